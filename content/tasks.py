"""RQ entry points of the content app: take ids, call one service, safe to run twice."""
