"""RQ entry points of the analytics app: take ids, call one service, safe to run twice."""
