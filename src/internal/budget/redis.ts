/**
 * The budget store on Redis (SCALE-OUT.md §3.3): the same contract as `makeMemory`, each
 * operation one atomic Lua script on the server's clock (`TIME`), through the `SharedState`
 * script runner (its timeout, EVALSHA with EVAL on NOSCRIPT).
 *
 * - Rolling windows are buckets (`u:<i>` / `t:<i>` of `bk` = window / 100 each): a spend counts
 *   for at least the window and at most one bucket more (never forgotten early).
 * - A reservation is a lease: when it expires (its worker died) the next script charges its full
 *   reserved amount and frees it from `reserved` (state `C`); a late settle corrects the charge.
 * - Settle is idempotent by reservation id: a settled id stays (state `S`) for a grace period, so
 *   a settle resent after a lost reply changes nothing.
 * - The epoch: a store that lost its state (epoch key missing or changed) refuses reservations
 *   with `SharedStateUnavailableError` until reseeded (`reset`), so a budget is never exceeded.
 *
 * Keys (one hash tag per namespace): `budget:acct:<key>` (hash), `budget:resv` (hash id ->
 * `state|usd|tok|gen|acct\nacct…`), `budget:leases` (zset id -> deadline µs), `budget:gen`,
 * `budget:accts` (set of account keys, for reset).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as LLMError from "../../LLMError.js"
import * as SharedState from "../../SharedState.js"
import type { AccountLimit, AccountState, BudgetStore, Reserve, Settle } from "./store.js"

const lib = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(x) if x == 0 then return '0' end return string.format('%.0f', x) end
local P = ARGV[1]
local RESV, LEASES, GEN, ACCTS = P .. 'budget:resv', P .. 'budget:leases', P .. 'budget:gen', P .. 'budget:accts'
local gen = tonumber(redis.call('GET', GEN) or '0')
local function acct(k) return P .. 'budget:acct:' .. k end
local function num(h, f) return tonumber(redis.call('HGET', h, f) or '0') end
-- Drops the buckets wholly older than the window: bucket i covers [i*bk, (i+1)*bk).
local function expire(h)
  local w = num(h, 'w')
  if w == 0 then return end
  local bk, lo = num(h, 'bk'), num(h, 'lo')
  local upto = math.floor((now - w) / bk) - 1
  if lo > upto then return end
  local du, dt = 0, 0
  if upto - lo > 256 then
    local fields = redis.call('HKEYS', h)
    for _, f in ipairs(fields) do
      local kind, i = string.match(f, '^([ut]):(%d+)$')
      if kind and tonumber(i) <= upto then
        local v = tonumber(redis.call('HGET', h, f))
        if kind == 'u' then du = du + v else dt = dt + v end
        redis.call('HDEL', h, f)
      end
    end
  else
    for i = lo, upto do
      local u = redis.call('HGET', h, 'u:' .. fmt(i))
      if u then du = du + tonumber(u); redis.call('HDEL', h, 'u:' .. fmt(i)) end
      local tk = redis.call('HGET', h, 't:' .. fmt(i))
      if tk then dt = dt + tonumber(tk); redis.call('HDEL', h, 't:' .. fmt(i)) end
    end
  end
  if du ~= 0 then redis.call('HINCRBY', h, 'W_usd', fmt(-du)) end
  if dt ~= 0 then redis.call('HINCRBY', h, 'W_tok', fmt(-dt)) end
  redis.call('HSET', h, 'lo', fmt(upto + 1))
end
-- Opens the account with the window the request names (w µs, 0: none); a changed window restarts it.
local function open(k, w)
  local h = acct(k)
  redis.call('SADD', ACCTS, k)
  if w > 0 and num(h, 'w') ~= w then
    local fields = redis.call('HKEYS', h)
    for _, f in ipairs(fields) do
      if string.match(f, '^[ut]:') then redis.call('HDEL', h, f) end
    end
    local bk = math.max(1, math.ceil(w / 100))
    redis.call('HSET', h, 'w', fmt(w), 'bk', fmt(bk), 'lo', fmt(math.floor(now / bk)), 'W_usd', '0', 'W_tok', '0')
  end
  expire(h)
  return h
end
local function spent(h)
  if num(h, 'w') > 0 then return num(h, 'W_usd'), num(h, 'W_tok') end
  return num(h, 'L_usd'), num(h, 'L_tok')
end
local function spend(h, usd, tok, windowed)
  if usd ~= 0 then redis.call('HINCRBY', h, 'L_usd', fmt(usd)) end
  if tok ~= 0 then redis.call('HINCRBY', h, 'L_tok', fmt(tok)) end
  local w = num(h, 'w')
  if w > 0 and windowed then
    expire(h)
    local i = fmt(math.floor(now / num(h, 'bk')))
    if usd ~= 0 then redis.call('HINCRBY', h, 'u:' .. i, fmt(usd)); redis.call('HINCRBY', h, 'W_usd', fmt(usd)) end
    if tok ~= 0 then redis.call('HINCRBY', h, 't:' .. i, fmt(tok)); redis.call('HINCRBY', h, 'W_tok', fmt(tok)) end
  end
end
local function state(k, out)
  local h = acct(k)
  local su, st = spent(h)
  out[#out + 1] = k
  out[#out + 1] = fmt(su)
  out[#out + 1] = fmt(st)
  out[#out + 1] = fmt(num(h, 'r_usd'))
  out[#out + 1] = fmt(num(h, 'r_tok'))
end
local function parse(v)
  local st, usd, tok, g, rest = string.match(v, '^(%a)|(-?%d+)|(-?%d+)|(%d+)|(.*)$')
  local keys = {}
  for k in string.gmatch(rest, '[^\\n]+') do keys[#keys + 1] = k end
  return st, tonumber(usd), tonumber(tok), tonumber(g), keys, rest
end
local function unreserve(keys, usd, tok, g)
  if g ~= gen then return end
  for _, k in ipairs(keys) do
    local h = acct(k)
    redis.call('HINCRBY', h, 'r_usd', fmt(-usd))
    redis.call('HINCRBY', h, 'r_tok', fmt(-tok))
  end
end
-- Expired leases: a reservation (R) is charged its full amount and freed (C); a settled (S) or
-- charged (C) entry past its grace is forgotten.
local function reap(grace, max)
  local ids = redis.call('ZRANGEBYSCORE', LEASES, '-inf', fmt(now), 'LIMIT', 0, max)
  for _, id in ipairs(ids) do
    local v = redis.call('HGET', RESV, id)
    if v then
      local st, usd, tok, g, keys, rest = parse(v)
      if st == 'R' then
        unreserve(keys, usd, tok, g)
        for _, k in ipairs(keys) do spend(acct(k), usd, tok, true) end
        redis.call('HSET', RESV, id, 'C|' .. fmt(usd) .. '|' .. fmt(tok) .. '|' .. fmt(g) .. '|' .. rest)
        redis.call('ZADD', LEASES, fmt(now + grace), id)
      else
        redis.call('HDEL', RESV, id)
        redis.call('ZREM', LEASES, id)
      end
    else
      redis.call('ZREM', LEASES, id)
    end
  end
end
`

/**
 * ARGV: prefix, epoch, id, lease µs, grace µs, est usd, est tok, n, (key, lim usd | -1, lim tok | -1, window µs | 0) × n.
 * Reply: {-2} state lost; {0, index, metric (1 usd, 2 tokens), state…} refused; {1, states…} reserved.
 */
const reserveScript = SharedState.script(
  "budget.reserve",
  `${lib}
if redis.call('GET', P .. 'epoch') ~= ARGV[2] then return {-2} end
local id, lease, grace = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local eu, et, n = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
reap(grace, 100)
local out = {}
local keys = {}
for i = 1, n do
  local b = 8 + (i - 1) * 4
  keys[i] = ARGV[b + 1]
  open(keys[i], tonumber(ARGV[b + 4]))
end
local existing = redis.call('HGET', RESV, id)
if existing then
  out[1] = 1
  for i = 1, n do state(keys[i], out) end
  return out
end
local function fits(limit, used, est) return limit < 0 or (used < limit and used + est <= limit) end
for i = 1, n do
  local b = 8 + (i - 1) * 4
  local h = acct(keys[i])
  local su, st = spent(h)
  if not fits(tonumber(ARGV[b + 2]), su + num(h, 'r_usd'), eu) then
    out = {0, i, 1}; state(keys[i], out); return out
  end
  if not fits(tonumber(ARGV[b + 3]), st + num(h, 'r_tok'), et) then
    out = {0, i, 2}; state(keys[i], out); return out
  end
end
for i = 1, n do
  local h = acct(keys[i])
  if eu ~= 0 then redis.call('HINCRBY', h, 'r_usd', fmt(eu)) end
  if et ~= 0 then redis.call('HINCRBY', h, 'r_tok', fmt(et)) end
end
redis.call('HSET', RESV, id, 'R|' .. fmt(eu) .. '|' .. fmt(et) .. '|' .. fmt(gen) .. '|' .. table.concat(keys, '\\n'))
redis.call('ZADD', LEASES, fmt(now + lease), id)
out[1] = 1
for i = 1, n do state(keys[i], out) end
return out
`
)

/**
 * ARGV: prefix, id, grace µs, usd, tok. Reply: {0} unknown or already settled; {1 | 2, states…}
 * settled (2: after its lease expired and charged it; the charge is corrected).
 */
const settleScript = SharedState.script(
  "budget.settle",
  `${lib}
local id, grace, au, at = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HGET', RESV, id)
if not v then reap(grace, 10); return {0} end
local st, usd, tok, g, keys, rest = parse(v)
if st == 'S' then return {0} end
for _, k in ipairs(keys) do expire(acct(k)) end
if st == 'R' then
  unreserve(keys, usd, tok, g)
  for _, k in ipairs(keys) do spend(acct(k), au, at, true) end
else
  -- C: the estimate was charged; correct it (in the window only upwards: never forget early).
  for _, k in ipairs(keys) do
    local h = acct(k)
    spend(h, au - usd, at - tok, false)
    spend(h, math.max(0, au - usd), math.max(0, at - tok), true)
    if au - usd > 0 then redis.call('HINCRBY', h, 'L_usd', fmt(-(au - usd))) end
    if at - tok > 0 then redis.call('HINCRBY', h, 'L_tok', fmt(-(at - tok))) end
  end
end
redis.call('HSET', RESV, id, 'S|0|0|' .. fmt(g) .. '|' .. rest)
redis.call('ZADD', LEASES, fmt(now + grace), id)
reap(grace, 10)
local out = {st == 'R' and 1 or 2}
for _, k in ipairs(keys) do state(k, out) end
return out
`
)

/** ARGV: prefix, usd, tok, n, (key, window µs) × n. Reply: states. */
const addScript = SharedState.script(
  "budget.add",
  `${lib}
local au, at, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = 1, n do
  local k = ARGV[4 + (i - 1) * 2 + 1]
  local h = open(k, tonumber(ARGV[4 + (i - 1) * 2 + 2]))
  spend(h, au, at, true)
  state(k, out)
end
return out
`
)

/** ARGV: prefix, grace µs, key, window µs. Reply: a state. */
const readScript = SharedState.script(
  "budget.read",
  `${lib}
reap(tonumber(ARGV[2]), 100)
open(ARGV[3], tonumber(ARGV[4]))
local out = {}
state(ARGV[3], out)
return out
`
)

/** ARGV: prefix, epoch. Forgets every account, bumps the generation, reseeds the epoch. */
const resetScript = SharedState.script(
  "budget.reset",
  `${lib}
local keys = redis.call('SMEMBERS', ACCTS)
for _, k in ipairs(keys) do redis.call('DEL', acct(k)) end
redis.call('DEL', ACCTS)
redis.call('INCR', GEN)
redis.call('SET', P .. 'epoch', ARGV[2])
return 1
`
)

/** Options of the Redis store. */
export interface RedisStoreOptions {
  /** How long a reservation lives before it is presumed dead and charged. Default 10 minutes. */
  readonly lease?: Duration.DurationInput | undefined
  /** How long a settled reservation is remembered (a resent settle is a no-op). Default 10 minutes. */
  readonly grace?: Duration.DurationInput | undefined
}

const micros = (d: Duration.DurationInput): number => Math.round(Duration.toMillis(Duration.decode(d)) * 1000)
const windowMicros = (limit: AccountLimit): number =>
  limit.windowMillis === undefined ? 0 : Math.max(1, Math.round(limit.windowMillis * 1000))
const limitArg = (n: number | undefined): number => (n === undefined ? -1 : n)

const states = (reply: ReadonlyArray<unknown>, from: number): Array<AccountState> => {
  const out: Array<AccountState> = []
  for (let i = from; i + 4 < reply.length; i += 5) {
    out.push({
      key: String(reply[i]),
      spent: { nanoUsd: Number(reply[i + 1]), tokens: Number(reply[i + 2]) },
      reserved: { nanoUsd: Number(reply[i + 3]), tokens: Number(reply[i + 4]) }
    })
  }
  return out
}

const stateLost = (operation: string) =>
  new LLMError.SharedStateUnavailableError({
    provider: "shared-state",
    operation,
    message:
      "shared state: the store lost its state (its epoch key is missing or changed: a restart without persistence, " +
      "a FLUSHALL or a failover to an empty node); budgets refuse every call until reseeded (Budget.reset)"
  })

/** The budget store on a Redis-backed `SharedState`. */
export const make = (
  redis: SharedState.RedisScripts,
  options: RedisStoreOptions = {}
): Effect.Effect<BudgetStore> =>
  Effect.gen(function*() {
    const lease = micros(options.lease ?? Duration.minutes(10))
    const grace = micros(options.grace ?? Duration.minutes(10))
    const epoch = yield* Ref.make(redis.epoch)
    const P = redis.prefix

    const reserve: BudgetStore["reserve"] = ({ accounts, estimate, id }) =>
      Effect.gen(function*() {
        const reply = (yield* redis.run("budget.reserve", reserveScript, [], [
          P,
          yield* Ref.get(epoch),
          id,
          lease,
          grace,
          estimate.nanoUsd,
          estimate.tokens,
          accounts.length,
          ...accounts.flatMap((a) => [a.key, limitArg(a.nanoUsd), limitArg(a.tokens), windowMicros(a)])
        ])) as ReadonlyArray<unknown>
        const status = Number(reply[0])
        if (status === -2) return yield* Effect.fail(stateLost("budget.reserve"))
        if (status === 0) {
          return {
            _tag: "Refused",
            index: Number(reply[1]) - 1,
            metric: Number(reply[2]) === 1 ? "usd" : "tokens",
            state: states(reply, 3)[0]!
          } satisfies Reserve
        }
        return { _tag: "Reserved", accounts: states(reply, 1) } satisfies Reserve
      })

    const settle: BudgetStore["settle"] = ({ actual, id }) =>
      Effect.map(
        redis.run("budget.settle", settleScript, [], [P, id, grace, actual.nanoUsd, actual.tokens]),
        (r): Settle => {
          const reply = r as ReadonlyArray<unknown>
          return Number(reply[0]) === 0
            ? { _tag: "Duplicate", accounts: [] }
            : { _tag: "Settled", accounts: states(reply, 1) }
        }
      )

    const add: BudgetStore["add"] = ({ accounts, actual }) =>
      Effect.map(
        redis.run("budget.add", addScript, [], [
          P,
          actual.nanoUsd,
          actual.tokens,
          accounts.length,
          ...accounts.flatMap((a) => [a.key, windowMicros(a)])
        ]),
        (r) => states(r as ReadonlyArray<unknown>, 0)
      )

    const read: BudgetStore["read"] = (account) =>
      Effect.map(
        redis.run("budget.read", readScript, [], [P, grace, account.key, windowMicros(account)]),
        (r) => states(r as ReadonlyArray<unknown>, 0)[0]!
      )

    const reset: BudgetStore["reset"] = Effect.flatMap(
      Ref.get(epoch),
      (current) => Effect.asVoid(redis.run("budget.reset", resetScript, [], [P, current]))
    )

    return { reserve, settle, add, read, reset } satisfies BudgetStore
  })

/**
 * `onUnavailable: "local"`: when the shared store fails, the operation runs on a local store of
 * this process instead (a log line and `onFallback` each time). A reservation made locally is
 * settled locally. A store that lost its state still refuses: local mode covers an unreachable
 * store, not a lost one.
 */
export const withLocalFallback = (
  shared: BudgetStore,
  local: BudgetStore,
  onFallback: (operation: string) => Effect.Effect<void>
): BudgetStore => {
  const localIds = new Set<string>()
  const fallback = <A>(
    operation: string,
    primary: Effect.Effect<A, LLMError.SharedStateUnavailableError>,
    secondary: Effect.Effect<A, LLMError.SharedStateUnavailableError>
  ) =>
    Effect.catchIf(
      primary,
      (e) => !e.message.includes("lost its state"),
      (e) =>
        Effect.zipRight(
          Effect.zipRight(
            onFallback(operation),
            Effect.logWarning(
              `budget: shared state unavailable (${e.message}); ${operation} runs on this process' local budget`
            )
          ),
          secondary
        )
    )
  return {
    reserve: (request) =>
      fallback(
        "reserve",
        shared.reserve(request),
        Effect.tap(local.reserve(request), (answer) =>
          Effect.sync(() => {
            if (answer._tag === "Reserved") localIds.add(request.id)
          }))
      ),
    settle: (request) => {
      if (localIds.delete(request.id)) return local.settle(request)
      return shared.settle(request)
    },
    add: (request) => fallback("add", shared.add(request), local.add(request)),
    read: (account) => fallback("read", shared.read(account), local.read(account)),
    reset: Effect.zipRight(local.reset, shared.reset)
  }
}
