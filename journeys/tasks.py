"""RQ entry points of the journeys app: take ids, call one service, safe to run twice."""
