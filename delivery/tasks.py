"""RQ entry points of the delivery app: take ids, call one service, safe to run twice."""
