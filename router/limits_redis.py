"""Rate limits shared by every process and host that uses the same Redis: one budget for N replicas.

Per-process counters let N replicas send N times the configured limit. Here each model's sliding windows live
in Redis and one Lua script reads them, expires old entries, checks every limit and reserves the request in a
single atomic step, so replicas racing for the last slot cannot both get it. Per model the keys are a sorted
set of the requests in the last minute (``…:req``), a hash of their token counts with running sums
(``…:tok``), the daily window (a sorted set for a rolling 24 hours, or a counter per calendar day for quotas
that reset at a zone's midnight) and the 429 block (``…:blocked``). All keys of a model share a ``{hash
tag}`` so the script also runs on Redis Cluster, and every key expires on its own, so an abandoned prefix
cleans itself up.

Times are the callers' clocks (hosts should be NTP-synchronised, as for any distributed rate limit). When
Redis cannot be reached the limiter lets requests through and logs it: the providers' own 429s still protect
the quota, and an outage of the limiter should not become an outage of every model.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import redis
import redis.asyncio as aredis

from .catalog import Limits
from .limits import DAY_SECONDS, NEVER, WINDOW_SECONDS, Decision, Reservation, day_bounds

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "autopicker:limits:"
#: Errors that mean "Redis cannot be reached"; any other Redis error (a script bug) still raises.
_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)
#: Keys outlive the longest window by a day, then vanish on their own.
KEY_TTL_SECONDS = int(2 * DAY_SECONDS)

# KEYS: req zset, tok hash, day (zset or counter), blocked.
# ARGV: now, window, rpm, tpm, input_tpm, output_tpm, rpd, in, out, id, day_mode, day_end, ttl
_RESERVE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local rpm, tpm, itpm, otpm, rpd = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7])
local tin, tout = tonumber(ARGV[8]), tonumber(ARGV[9])
local id, day_mode, day_end, ttl = ARGV[10], ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13])

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)
for _, old in ipairs(expired) do
  local tokens = redis.call('HGET', KEYS[2], old)
  if tokens then
    local sep = string.find(tokens, ':')
    -- 0 - x, not -x: Lua writes -0 for a zero, which HINCRBY refuses.
    redis.call('HINCRBY', KEYS[2], '_in', 0 - tonumber(string.sub(tokens, 1, sep - 1)))
    redis.call('HINCRBY', KEYS[2], '_out', 0 - tonumber(string.sub(tokens, sep + 1)))
    redis.call('HDEL', KEYS[2], old)
  end
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window) end

local reason = nil
local retry = 0
local never = false
local function deny(why, at)
  if reason == nil then reason = why end
  if at > retry then retry = at end
end

local blocked = tonumber(redis.call('GET', KEYS[4]) or '0')
if blocked > now then deny('blocked', blocked) end

local day_count = 0
if day_mode == 'rolling' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 86400)
  day_count = redis.call('ZCARD', KEYS[3])
  if rpd > 0 and day_count + 1 > rpd then
    local first = redis.call('ZRANGE', KEYS[3], day_count - rpd, day_count - rpd, 'WITHSCORES')
    deny('rpd', tonumber(first[2]) + 86400)
  end
else
  day_count = tonumber(redis.call('GET', KEYS[3]) or '0')
  if rpd > 0 and day_count + 1 > rpd then deny('rpd', day_end) end
end

local count = redis.call('ZCARD', KEYS[1])
if rpm > 0 and count + 1 > rpm then
  local first = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
  deny('rpm', tonumber(first[2]) + window)
end

local sum_in = tonumber(redis.call('HGET', KEYS[2], '_in') or '0')
local sum_out = tonumber(redis.call('HGET', KEYS[2], '_out') or '0')
local function free_at(need, which)
  local freed = 0
  local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    local tokens = redis.call('HGET', KEYS[2], entries[i])
    if tokens then
      local sep = string.find(tokens, ':')
      local a, b = tonumber(string.sub(tokens, 1, sep - 1)), tonumber(string.sub(tokens, sep + 1))
      if which == 'in' then
        freed = freed + a
      elseif which == 'out' then
        freed = freed + b
      else
        freed = freed + a + b
      end
      if freed >= need then return tonumber(entries[i + 1]) + window end
    end
  end
  return now + window
end
local function check(name, limit, used, asked, which)
  if limit > 0 and used + asked > limit then
    if asked > limit then
      if not never then reason = name end
      never = true
      deny(name, 0)
    else
      deny(name, free_at(used + asked - limit, which))
    end
  end
end
check('tpm', tpm, sum_in + sum_out, tin + tout, 'total')
check('input_tpm', itpm, sum_in, tin, 'in')
check('output_tpm', otpm, sum_out, tout, 'out')

if reason ~= nil then
  if never then return {0, 'inf', reason} end
  return {0, tostring(retry), reason}
end

redis.call('ZADD', KEYS[1], now, id)
redis.call('HSET', KEYS[2], id, tin .. ':' .. tout)
redis.call('HINCRBY', KEYS[2], '_in', tin)
redis.call('HINCRBY', KEYS[2], '_out', tout)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
if day_mode == 'rolling' then
  redis.call('ZADD', KEYS[3], now, id)
  redis.call('EXPIRE', KEYS[3], ttl)
else
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], math.max(math.ceil(day_end - now) + 3600, 1))
end
return {1, '0', ''}
"""

# KEYS: tok hash. ARGV: id, in, out
_RECONCILE = """
local tokens = redis.call('HGET', KEYS[1], ARGV[1])
if not tokens then return 0 end
local sep = string.find(tokens, ':')
local tin, tout = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('HINCRBY', KEYS[1], '_in', tin - tonumber(string.sub(tokens, 1, sep - 1)))
redis.call('HINCRBY', KEYS[1], '_out', tout - tonumber(string.sub(tokens, sep + 1)))
redis.call('HSET', KEYS[1], ARGV[1], tin .. ':' .. tout)
return 1
"""

# KEYS: blocked. ARGV: until, ttl_ms
_BLOCK = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', math.max(tonumber(ARGV[2]), 1))
end
return 1
"""


class RedisLimiter:
    """The limiter backend whose windows live in Redis, shared by every process using the same prefix."""

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        client: redis.Redis | None = None,
        async_client: aredis.Redis | None = None,
    ) -> None:
        self.url = url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.prefix = prefix
        self._client = client
        self._async_client = async_client
        self._scripts: dict[str, Any] = {}
        self._async_scripts: dict[str, Any] = {}
        self._last_warning = 0.0

    # -- clients --------------------------------------------------------------------------------------------

    @property
    def client(self) -> redis.Redis:
        """The sync Redis client (created on first use)."""
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_timeout=2.0, socket_connect_timeout=2.0)
        return self._client

    @property
    def async_client(self) -> aredis.Redis:
        """The async Redis client (created on first use)."""
        if self._async_client is None:
            self._async_client = aredis.Redis.from_url(
                self.url, socket_timeout=2.0, socket_connect_timeout=2.0
            )
        return self._async_client

    def _script(self, name: str, body: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(body)
        return script

    def _async_script(self, name: str, body: str) -> Any:
        script = self._async_scripts.get(name)
        if script is None:
            script = self._async_scripts[name] = self.async_client.register_script(body)
        return script

    # -- keys and arguments ---------------------------------------------------------------------------------

    def keys(self, model: str, limits: Limits, now: float) -> list[str]:
        """The Redis keys of ``model``: requests, tokens, daily window, block."""
        base = f"{self.prefix}{{{model}}}"
        if limits.daily_reset_timezone:
            day_start, _ = day_bounds(now, limits.daily_reset_timezone)
            day_key = f"{base}:day:{int(day_start)}"
        else:
            day_key = f"{base}:day"
        return [f"{base}:req", f"{base}:tok", day_key, f"{base}:blocked"]

    def _reserve_args(
        self, limits: Limits, input_tokens: int, output_tokens: int, now: float, request_id: str
    ) -> list[Any]:
        day_end = day_bounds(now, limits.daily_reset_timezone)[1] if limits.daily_reset_timezone else 0.0
        return [
            repr(now),
            repr(WINDOW_SECONDS),
            limits.rpm or 0,
            limits.tpm or 0,
            limits.input_tpm or 0,
            limits.output_tpm or 0,
            limits.rpd or 0,
            input_tokens,
            output_tokens,
            request_id,
            "calendar" if limits.daily_reset_timezone else "rolling",
            repr(day_end),
            KEY_TTL_SECONDS,
        ]

    @staticmethod
    def _decision(
        reply: list[Any],
        model: str,
        keys: list[str],
        input_tokens: int,
        output_tokens: int,
        now: float,
        request_id: str,
    ) -> Decision:
        granted, retry, reason = int(reply[0]), reply[1], reply[2]
        if granted:
            return Decision(True, Reservation(model, input_tokens, output_tokens, now, (keys[1], request_id)))
        retry_text = retry.decode() if isinstance(retry, bytes) else str(retry)
        reason_text = reason.decode() if isinstance(reason, bytes) else str(reason)
        return Decision(
            False, retry_at=NEVER if retry_text == "inf" else float(retry_text), reason=reason_text
        )

    def _unavailable(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > 30.0:
            self._last_warning = now
            logger.warning(
                "Redis at %s is unavailable (%s); rate limits are not enforced until it is back",
                redis.connection.parse_url(self.url).get("host", "?"),
                error,
            )

    # -- the limiter interface ------------------------------------------------------------------------------

    def reserve(
        self, model: str, limits: Limits, input_tokens: int, output_tokens: int, now: float
    ) -> Decision:
        """Atomically check every limit of ``model`` and reserve the request when it fits."""
        keys = self.keys(model, limits, now)
        request_id = os.urandom(8).hex()
        try:
            reply = self._script("reserve", _RESERVE)(
                keys=keys, args=self._reserve_args(limits, input_tokens, output_tokens, now, request_id)
            )
        except _UNAVAILABLE as error:
            self._unavailable(error)
            return Decision(True)
        return self._decision(reply, model, keys, input_tokens, output_tokens, now, request_id)

    def reconcile(self, reservation: Reservation | None, input_tokens: int, output_tokens: int) -> None:
        """Swap a reservation's estimate for the real usage, if it is still in the window."""
        if reservation is None or not isinstance(reservation.token, tuple):
            return
        tok_key, request_id = reservation.token
        try:
            self._script("reconcile", _RECONCILE)(
                keys=[tok_key], args=[request_id, input_tokens, output_tokens]
            )
        except _UNAVAILABLE as error:
            self._unavailable(error)

    def block(self, model: str, until: float) -> None:
        """Refuse ``model`` in every process until ``until``."""
        key = f"{self.prefix}{{{model}}}:blocked"
        try:
            self._script("block", _BLOCK)(keys=[key], args=[repr(until), KEY_TTL_SECONDS * 1000])
        except _UNAVAILABLE as error:
            self._unavailable(error)

    async def areserve(
        self, model: str, limits: Limits, input_tokens: int, output_tokens: int, now: float
    ) -> Decision:
        """Async twin of :meth:`reserve`."""
        keys = self.keys(model, limits, now)
        request_id = os.urandom(8).hex()
        try:
            reply = await self._async_script("reserve", _RESERVE)(
                keys=keys, args=self._reserve_args(limits, input_tokens, output_tokens, now, request_id)
            )
        except _UNAVAILABLE as error:
            self._unavailable(error)
            return Decision(True)
        return self._decision(reply, model, keys, input_tokens, output_tokens, now, request_id)

    async def areconcile(
        self, reservation: Reservation | None, input_tokens: int, output_tokens: int
    ) -> None:
        """Async twin of :meth:`reconcile`."""
        if reservation is None or not isinstance(reservation.token, tuple):
            return
        tok_key, request_id = reservation.token
        try:
            await self._async_script("reconcile", _RECONCILE)(
                keys=[tok_key], args=[request_id, input_tokens, output_tokens]
            )
        except _UNAVAILABLE as error:
            self._unavailable(error)

    async def ablock(self, model: str, until: float) -> None:
        """Async twin of :meth:`block`."""
        key = f"{self.prefix}{{{model}}}:blocked"
        try:
            await self._async_script("block", _BLOCK)(keys=[key], args=[repr(until), KEY_TTL_SECONDS * 1000])
        except _UNAVAILABLE as error:
            self._unavailable(error)

    def close(self) -> None:
        """Close the sync client's connections."""
        if self._client is not None:
            self._client.close()
            self._client = None
            self._scripts.clear()

    async def aclose(self) -> None:
        """Close the async client's connections."""
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None
            self._async_scripts.clear()
