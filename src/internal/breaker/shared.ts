/**
 * The circuit breaker's state on Redis (SCALE-OUT.md §3.3): one hash per provider
 * (`{orx:<ns>}:cb:<provider>`: `state` C/O/H, `c` consecutive failures, `until` µs, `owner` and
 * `tuntil` of the half-open trial's lease), each admission and each outcome one atomic script on
 * the server's clock. Half-open lets exactly one trial through across every worker: the first
 * admission after `until` takes the trial lease; a trial whose worker died frees it when its lease
 * expires. Redis unavailable: the breaker of this process decides (a log line and a metric).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Crypto from "node:crypto"
import type { State, StateChange } from "../../CircuitBreaker.js"
import * as LLMError from "../../LLMError.js"
import * as SharedState from "../../SharedState.js"

/** `Released`: the call ended in a way that says nothing about the provider (interrupted, ignored error). */
export type Outcome = "Success" | "Failure" | "Released"

/** What a breaker decides: admit (with a permit to settle once) and settle. */
export interface Core<P> {
  readonly admit: Effect.Effect<P, LLMError.CircuitOpenError>
  readonly settle: (permit: P, outcome: Outcome) => Effect.Effect<void>
  readonly state: Effect.Effect<State>
}

const prelude = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(x) if x == 0 then return '0' end return string.format('%.0f', x) end
local st = redis.call('HGET', KEYS[1], 'state') or 'C'
local function num(f) return tonumber(redis.call('HGET', KEYS[1], f) or '0') end
`

/** KEYS: cb. ARGV: owner, trial lease µs. Reply: {1, trial 0|1, change} admitted; {0, wait µs} refused. */
const admitScript = SharedState.script(
  "breaker.admit",
  `${prelude}
if st == 'C' then return {1, 0, ''} end
if st == 'O' and now < num('until') then return {0, fmt(num('until') - now)} end
if st == 'H' and num('tuntil') > now then return {0, '0'} end

redis.call('HSET', KEYS[1], 'state', 'H', 'owner', ARGV[1], 'tuntil', fmt(now + tonumber(ARGV[2])))
if st == 'O' then return {1, 1, 'O>H'} end
return {1, 1, ''}
`
)

/** KEYS: cb. ARGV: owner, outcome S|F|R, trial 0|1, threshold, reset µs. Reply: the change ('' none). */
const recordScript = SharedState.script(
  "breaker.record",
  `${prelude}
local outcome, trial = ARGV[2], ARGV[3]
if trial == '1' then
  if st ~= 'H' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return '' end
  if outcome == 'S' then redis.call('DEL', KEYS[1]); return 'H>C' end
  if outcome == 'F' then
    redis.call('HSET', KEYS[1], 'state', 'O', 'until', fmt(now + tonumber(ARGV[5])), 'c', '0')
    redis.call('HDEL', KEYS[1], 'owner', 'tuntil')
    return 'H>O'
  end
  redis.call('HDEL', KEYS[1], 'owner', 'tuntil')
  return ''
end
if st ~= 'C' or outcome == 'R' then return '' end
if outcome == 'S' then redis.call('HSET', KEYS[1], 'c', '0'); return '' end
local c = redis.call('HINCRBY', KEYS[1], 'c', 1)
if c >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'state', 'O', 'until', fmt(now + tonumber(ARGV[5])), 'c', '0')
  return 'C>O'
end
return ''
`
)

/** KEYS: cb. Reply: C, O or H. */
const stateScript = SharedState.script("breaker.state", `${prelude}\nreturn st`)

const stateNames: Record<string, State> = { C: "Closed", O: "Open", H: "HalfOpen" }

const changeOf = (provider: string, reply: unknown): StateChange | undefined => {
  const s = String(reply)
  if (s.length !== 3) return undefined
  return { provider, from: stateNames[s[0]!]!, to: stateNames[s[2]!]! }
}

/** A permit of the shared breaker, or of the local one when Redis was unavailable at admission. */
export type SharedPermit<P> =
  | { readonly _tag: "Shared"; readonly owner: string; readonly trial: boolean }
  | { readonly _tag: "Local"; readonly permit: P }

/** The shared breaker over a Redis-backed `SharedState`, falling back to `local`. */
export const make = <P>(options: {
  readonly redis: SharedState.RedisScripts
  readonly provider: string
  readonly threshold: number
  readonly resetMillis: number
  readonly trialLeaseMillis: number
  readonly local: Core<P>
  readonly notify: (change: StateChange | undefined) => Effect.Effect<void>
  readonly onFallback: (operation: string) => Effect.Effect<void>
}): Core<SharedPermit<P>> => {
  const { local, notify, provider, redis } = options
  const key = `${redis.prefix}cb:${provider}`
  const fallback = (operation: string, e: LLMError.SharedStateUnavailableError) =>
    Effect.zipRight(
      options.onFallback(operation),
      Effect.logWarning(
        `${provider}: circuit breaker: shared state unavailable (${e.message}); this process' breaker decides`
      )
    )
  const admit: Core<SharedPermit<P>>["admit"] = Effect.suspend(() => {
    const owner = Crypto.randomUUID()
    return redis.run("breaker.admit", admitScript, [key], [owner, Math.round(options.trialLeaseMillis * 1000)]).pipe(
      Effect.matchEffect({
        onFailure: (e) =>
          Effect.zipRight(
            fallback("admit", e),
            Effect.map(local.admit, (permit): SharedPermit<P> => ({ _tag: "Local", permit }))
          ),
        onSuccess: (r) => {
          const reply = r as ReadonlyArray<unknown>
          if (Number(reply[0]) === 1) {
            return Effect.as(
              notify(changeOf(provider, reply[2])),
              { _tag: "Shared", owner, trial: Number(reply[1]) === 1 } as SharedPermit<P>
            )
          }
          const retryAfter = Math.ceil(Number(reply[1]) / 1000)
          return Effect.fail(
            new LLMError.CircuitOpenError({
              provider,
              retryAfter: Duration.millis(retryAfter),
              message: retryAfter > 0
                ? `${provider}: circuit breaker open (shared); the next trial call in ${
                  Duration.format(Duration.millis(retryAfter))
                }`
                : `${provider}: circuit breaker half-open (shared) and its one trial call is in flight`
            })
          )
        }
      })
    )
  })
  const settle: Core<SharedPermit<P>>["settle"] = (permit, outcome) => {
    if (permit._tag === "Local") return local.settle(permit.permit, outcome)
    return redis.run("breaker.record", recordScript, [key], [
      permit.owner,
      outcome === "Success" ? "S" : outcome === "Failure" ? "F" : "R",
      permit.trial ? "1" : "0",
      options.threshold,
      Math.round(options.resetMillis * 1000)
    ]).pipe(
      Effect.matchEffect({
        // A lost outcome: a trial's lease expires and another worker probes.
        onFailure: (e) => fallback("record", e),
        onSuccess: (reply) => notify(changeOf(provider, reply))
      })
    )
  }
  const state: Core<SharedPermit<P>>["state"] = redis.run("breaker.state", stateScript, [key], []).pipe(
    Effect.map((reply) => stateNames[String(reply)] ?? "Closed"),
    Effect.catchAll((e) => Effect.zipRight(fallback("state", e), local.state))
  )
  return { admit, settle, state }
}
