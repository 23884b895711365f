"""RQ entry points of the segments app: take ids, call one service, safe to run twice."""
