"""Send rates shared by every worker: a fixed-window count in Redis per key (a
workspace's channel per second, a journey per minute)."""

from __future__ import annotations

import time

from engagement_site.jobs import redis_connection

_TAKE = """
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
if used == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
local over = used - tonumber(ARGV[2])
if over > 0 then
  local back = math.min(over, tonumber(ARGV[1]))
  redis.call('DECRBY', KEYS[1], back)
  return tonumber(ARGV[1]) - back
end
return tonumber(ARGV[1])
"""


def take(key: str, *, rate: int, want: int, window: int = 1) -> tuple[int, float]:
    """Take up to `want` sends of the `rate` allowed in the current window of
    `window` seconds; returns how many were granted and the seconds until the next
    window. Atomic (one Lua script), so workers never grant more than the rate."""

    now = time.time()
    slot = int(now // window)
    connection = redis_connection("default")
    granted = connection.eval(
        _TAKE, 1, f"rate:{key}:{window}:{slot}", int(want), int(rate), window * 2
    )
    return int(granted), (slot + 1) * window - now
