/**
 * `SharedState`: the one store behind rate limits (and, next, budgets, circuit breakers and usage
 * totals) when many worker processes must share them.
 *
 * - {@link layerMemory} (the default): one process, the same contract, on Effect's `Clock` (so
 *   `TestClock` drives it).
 * - {@link layerRedis}: Redis 7 or Valkey through `@redis/client` (an optional peer dependency),
 *   a Scope-managed connection, atomic Lua scripts on the server's clock (`TIME`), loaded lazily
 *   (`EVALSHA`, then `EVAL` on `NOSCRIPT`), an operation id on every write, an epoch key, and a
 *   timeout on every store call (`LLMError.SharedStateUnavailableError` when it passes).
 * - {@link layerConnection}: the same store over a connection of your own ({@link RedisConnection}).
 *
 * Every key of a namespace shares one hash tag (`{orx:<namespace>}`), so the scripts may touch
 * any of them and Redis Cluster works unchanged. Money, when it comes (budgets), is integer
 * nano-dollars ({@link toNanoUsd}).
 *
 * @example
 * ```ts
 * import { Duration, Effect, Redacted } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const state = yield* SharedState.SharedState
 *   const admission = yield* state.limiter.admit("openai:gpt-4o", [
 *     { name: "rpm", max: 500, period: Duration.minutes(1), cost: 1 },
 *     { name: "tpm", max: 200_000, period: Duration.minutes(1), cost: 1_200 }
 *   ], "call-1")
 *   return admission._tag // "Admitted"
 * })
 *
 * // One process:
 * Effect.runPromise(Effect.provide(program, SharedState.layerMemory))
 * // Many processes on one Redis:
 * const shared = SharedState.layerRedis({ url: Redacted.make("redis://127.0.0.1:6379"), namespace: "prod" })
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as SharedUsage from "./internal/shared/usage.js"
import * as LLMError from "./LLMError.js"
import type * as Usage from "./Usage.js"

// -----------------------------------------------------------------------------
// Models
// -----------------------------------------------------------------------------

/**
 * One limit a call counts against: at most `max` units per `period` (a bucket of `max` that
 * refills continuously, GCRA), and what this call costs in it (`1` for requests, its tokens for tpm).
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import type { SharedState } from "@orchestify/providers"
 *
 * const rpm: SharedState.LimitCost = { name: "rpm", max: 500, period: Duration.minutes(1), cost: 1 }
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface LimitCost {
  /** `rpm`, `tpm`, `itpm`, `otpm` or a name of yours: one bucket per key and name. */
  readonly name: string
  readonly max: number
  readonly period: Duration.Duration
  readonly cost: number
}

/**
 * The answer of {@link LimiterStore.admit}: admitted (every limit consumed), wait (nothing
 * consumed; the earliest time all limits could admit the call, or a shared cooldown: `limit`
 * `"cooldown"`), or too large (the cost exceeds a limit's `max`: it can never pass).
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import type { SharedState } from "@orchestify/providers"
 *
 * const describe = (a: SharedState.Admission): string =>
 *   a._tag === "Wait" ? `wait ${Duration.format(a.wait)} for ${a.limit}` : a._tag
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export type Admission =
  | { readonly _tag: "Admitted" }
  | { readonly _tag: "Wait"; readonly wait: Duration.Duration; readonly limit: string }
  | { readonly _tag: "TooLarge"; readonly limit: string }

/**
 * The limiter part of the store. Every write carries an operation id: the same id sent twice (a
 * resend after a lost reply) is applied once.
 *
 * @example
 * ```ts
 * import { Duration, Effect } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * // A provider 429 with retry-after: 2 s: every worker on the store waits.
 * const onProvider429 = Effect.flatMap(SharedState.SharedState, (state) =>
 *   state.limiter.cooldown("openai:gpt-4o", Duration.seconds(2), "call-7:cooldown"))
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface LimiterStore {
  /** Checks every limit (and the key's cooldown) and consumes them all, or none, in one step. */
  readonly admit: (
    key: string,
    costs: ReadonlyArray<LimitCost>,
    opId: string
  ) => Effect.Effect<Admission, LLMError.SharedStateUnavailableError>
  /**
   * Corrects one limit by `delta` units (actual minus reserved: positive consumes more, negative
   * refunds), once per `opId`.
   */
  readonly adjust: (
    key: string,
    limit: Omit<LimitCost, "cost">,
    delta: number,
    opId: string
  ) => Effect.Effect<void, LLMError.SharedStateUnavailableError>
  /**
   * What the provider said is left of one limit (its rate-limit headers): the bucket is tightened
   * to at most `remaining` (it never loosens), and with nothing left, nobody is admitted on `key`
   * until `reset` from now. Once per `opId`.
   */
  readonly observe: (
    key: string,
    limit: Omit<LimitCost, "cost">,
    remaining: number,
    reset: Duration.Duration,
    opId: string
  ) => Effect.Effect<void, LLMError.SharedStateUnavailableError>
  /** Nobody is admitted on `key` for `wait` from now (an earlier, longer cooldown stays). */
  readonly cooldown: (
    key: string,
    wait: Duration.Duration,
    opId: string
  ) => Effect.Effect<void, LLMError.SharedStateUnavailableError>
  /** The cooldown left on `key`, if any. */
  readonly cooldownRemaining: (
    key: string
  ) => Effect.Effect<Option.Option<Duration.Duration>, LLMError.SharedStateUnavailableError>
}

/**
 * What {@link Service.health} reports: the backend, its epoch (a random id set once per store:
 * a different one means the store lost its state), and the last store error seen.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const epoch = Effect.map(Effect.flatMap(SharedState.SharedState, (s) => s.health), (h) => h.epoch)
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface Health {
  readonly backend: "memory" | "redis"
  readonly epoch: string
  /** `false` when the epoch key is missing or different from the one this process started with. */
  readonly epochIntact: boolean
  readonly lastError: Option.Option<string>
}

/**
 * The `SharedState` service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const backend = Effect.map(SharedState.SharedState, (s: SharedState.Service) => s.backend)
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  readonly backend: "memory" | "redis"
  /** The namespace every key lives under. */
  readonly namespace: string
  readonly limiter: LimiterStore
  readonly health: Effect.Effect<Health, LLMError.SharedStateUnavailableError>
  /** Usage totals of every process on the store (see {@link UsageStore}). */
  readonly usage: UsageStore
  /**
   * The Redis store's script runner, for the other stores built on the same connection (budgets,
   * circuit breakers); absent on the memory store.
   */
  readonly redis?: RedisScripts | undefined
}

/**
 * What a Redis-backed {@link Service} shares with the stores built on it: the key prefix of its
 * namespace, the epoch it started with, and a runner of scripts under the store's timeout.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const ping = SharedState.script("ping", "return 'pong'")
 * const program = Effect.flatMap(SharedState.SharedState, (s) =>
 *   s.redis === undefined ? Effect.succeed("memory") : s.redis.run("ping", ping, [], []))
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface RedisScripts {
  /** `{orx:<namespace>}:` */
  readonly prefix: string
  readonly epoch: string
  readonly run: (
    operation: string,
    script: Script,
    keys: ReadonlyArray<string>,
    args: ReadonlyArray<string | number>
  ) => Effect.Effect<unknown, LLMError.SharedStateUnavailableError>
}

/**
 * The `SharedState` tag.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const program = Effect.flatMap(SharedState.SharedState, (state) => state.health)
 * Effect.runPromise(Effect.provide(program, SharedState.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category Tags
 */
export class SharedState extends Context.Tag("@orchestify/providers/SharedState")<SharedState, Service>() {}

// -----------------------------------------------------------------------------
// Money
// -----------------------------------------------------------------------------

/**
 * Dollars as integer nano-dollars, the unit of every amount in the store (exact sums, no
 * floating-point drift; $9M of headroom per value as a JS number).
 *
 * @example
 * ```ts
 * import { SharedState } from "@orchestify/providers"
 *
 * SharedState.toNanoUsd(0.0000123) // 12300
 * ```
 *
 * @since 0.1.0
 * @category Money
 */
export const toNanoUsd = (usd: number): number => Math.round(usd * 1e9)

/**
 * Integer nano-dollars back to dollars.
 *
 * @example
 * ```ts
 * import { SharedState } from "@orchestify/providers"
 *
 * SharedState.fromNanoUsd(12300) // 0.0000123
 * ```
 *
 * @since 0.1.0
 * @category Money
 */
export const fromNanoUsd = (nanoUsd: number): number => nanoUsd / 1e9

// -----------------------------------------------------------------------------
// Memory
// -----------------------------------------------------------------------------

/** How long an operation id is remembered (a resend after this is applied again). */
const dedupeMillis = 120_000

const micros = (d: Duration.Duration): number => Math.round(Duration.toMillis(d) * 1000)

/**
 * The store in one process: the same contract as Redis (GCRA, all or nothing, operation ids,
 * cooldowns), on Effect's `Clock` so `TestClock` drives it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const state = yield* SharedState.make
 *   return state.backend // "memory"
 * })
 * ```
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: Effect.Effect<Service> = Effect.sync(() => {
  const tats = new Map<string, number>()
  const cooldowns = new Map<string, number>()
  const ops = new Map<string, number>()
  const epoch = Crypto.randomUUID()
  const now = Effect.map(Clock.currentTimeMillis, (ms) => ms * 1000)
  /** Remembers `opId`; `false` when it was already seen (a resend). Sweeps expired ids as it goes. */
  // Expired ids are swept when the map has doubled since the last sweep: amortised O(1) per write.
  let sweepAt = 10_000
  const firstTime = (opId: string, at: number): boolean => {
    if (ops.size > sweepAt) {
      for (const [id, until] of ops) if (until <= at) ops.delete(id)
      sweepAt = Math.max(10_000, ops.size * 2)
    }
    const until = ops.get(opId)
    if (until !== undefined && until > at) return false
    ops.set(opId, at + dedupeMillis * 1000)
    return true
  }
  const tatKey = (key: string, name: string) => `${key}\u0000${name}`

  const limiter: LimiterStore = {
    admit: (key, costs, opId) =>
      Effect.map(now, (at): Admission => {
        const op = `${opId}:admit`
        if ((ops.get(op) ?? 0) > at) return { _tag: "Admitted" }
        const until = cooldowns.get(key) ?? 0
        if (until > at) return { _tag: "Wait", wait: Duration.micros(BigInt(Math.ceil(until - at))), limit: "cooldown" }
        const next: Array<number> = []
        let wait = 0
        let which = ""
        for (const c of costs) {
          if (c.cost > c.max) return { _tag: "TooLarge", limit: c.name }
          const period = micros(c.period)
          const t = period / c.max
          const tat = Math.max(tats.get(tatKey(key, c.name)) ?? 0, at)
          const ntat = tat + c.cost * t
          const w = ntat - period - at
          if (w > wait) {
            wait = w
            which = c.name
          }
          next.push(ntat)
        }
        if (which !== "") return { _tag: "Wait", wait: Duration.micros(BigInt(Math.ceil(wait))), limit: which }
        costs.forEach((c, i) => tats.set(tatKey(key, c.name), next[i]!))
        firstTime(op, at)
        return { _tag: "Admitted" }
      }),
    adjust: (key, limit, delta, opId) =>
      Effect.flatMap(now, (at) =>
        Effect.sync(() => {
          if (!firstTime(opId, at)) return
          const k = tatKey(key, limit.name)
          const tat = Math.max(tats.get(k) ?? 0, at) + delta * (micros(limit.period) / limit.max)
          if (tat <= at) tats.delete(k)
          else tats.set(k, tat)
        })),
    observe: (key, limit, remaining, reset, opId) =>
      Effect.flatMap(now, (at) =>
        Effect.sync(() => {
          if (!firstTime(opId, at)) return
          const left = Math.min(limit.max, Math.max(remaining, 0))
          const floor = at + (limit.max - left) * (micros(limit.period) / limit.max)
          const k = tatKey(key, limit.name)
          if (floor > (tats.get(k) ?? 0)) tats.set(k, floor)
          const until = at + micros(reset)
          if (left <= 0 && (cooldowns.get(key) ?? 0) < until) cooldowns.set(key, until)
        })),
    cooldown: (key, wait, opId) =>
      Effect.flatMap(now, (at) =>
        Effect.sync(() => {
          if (!firstTime(opId, at)) return
          const until = at + micros(wait)
          if ((cooldowns.get(key) ?? 0) < until) cooldowns.set(key, until)
        })),
    cooldownRemaining: (key) =>
      Effect.map(now, (at) => {
        const until = cooldowns.get(key) ?? 0
        return until > at ? Option.some(Duration.micros(BigInt(Math.ceil(until - at)))) : Option.none()
      })
  }
  return {
    backend: "memory",
    namespace: "memory",
    limiter,
    usage: SharedUsage.make(SharedUsage.memoryBackend(), true),
    health: Effect.succeed({ backend: "memory", epoch, epochIntact: true, lastError: Option.none() })
  } satisfies Service
})

/**
 * The default store: one process ({@link make}).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * Effect.runPromise(Effect.provide(Effect.flatMap(SharedState.SharedState, (s) => s.health), SharedState.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerMemory: Layer.Layer<SharedState> = Layer.effect(SharedState, make)

// -----------------------------------------------------------------------------
// Redis: the port
// -----------------------------------------------------------------------------

/**
 * A Lua script the store runs: its source and SHA-1 (for `EVALSHA`).
 *
 * @example
 * ```ts
 * import { SharedState } from "@orchestify/providers"
 *
 * const ping = SharedState.script("ping", "return 'pong'")
 * ping.sha // "..."
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface Script {
  readonly name: string
  readonly source: string
  readonly sha: string
}

/**
 * Makes a {@link Script} (computes its SHA-1).
 *
 * @example
 * ```ts
 * import { SharedState } from "@orchestify/providers"
 *
 * const ping = SharedState.script("ping", "return 'pong'")
 * ```
 *
 * @since 0.1.0
 * @category Constructors
 */
export const script = (name: string, source: string): Script => ({
  name,
  source,
  sha: Crypto.createHash("sha1").update(source).digest("hex")
})

/**
 * The port the Redis store runs on: send one command, get its reply. Bring your own connection
 * by providing this tag (any client that can send a raw command: `@redis/client`'s `sendCommand`,
 * ioredis' `call`), then use {@link layerConnection}. Errors must be `SharedStateUnavailableError`,
 * except a script error, whose message must keep Redis' own (`NOSCRIPT ...`).
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { LLMError, SharedState } from "@orchestify/providers"
 *
 * declare const client: { call: (...args: ReadonlyArray<string>) => Promise<unknown> } // e.g. ioredis
 *
 * const connection = Layer.succeed(SharedState.RedisConnection, {
 *   send: (args) =>
 *     Effect.tryPromise({
 *       try: () => client.call(...args),
 *       catch: (e) => new LLMError.SharedStateUnavailableError({ provider: "shared-state", message: String(e) })
 *     })
 * })
 * const shared = Layer.provide(SharedState.layerConnection({ namespace: "prod" }), connection)
 * ```
 *
 * @since 0.1.0
 * @category Tags
 */
export class RedisConnection extends Context.Tag("@orchestify/providers/SharedState/RedisConnection")<
  RedisConnection,
  {
    readonly send: (args: ReadonlyArray<string>) => Effect.Effect<unknown, LLMError.SharedStateUnavailableError>
    /**
     * Set when the connection itself fails every command that has no answer after this long (as
     * {@link connectRedis} does, with one timer per command): the store then adds no timeout of its
     * own when it is at most the store's. Leave it out and the store times every call.
     */
    readonly commandTimeout?: Duration.Duration | undefined
  }
>() {}

const unavailable = (operation: string, message: string) =>
  new LLMError.SharedStateUnavailableError({ provider: "shared-state", message, operation })

/**
 * Runs a script: `EVALSHA`, then `EVAL` when the server does not know it (`NOSCRIPT`: a restart,
 * a failover, `SCRIPT FLUSH`), which also loads it for the next call.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const ping = SharedState.script("ping", "return 'pong'")
 * const program = Effect.flatMap(SharedState.RedisConnection, (c) => SharedState.runScript(c, ping, [], []))
 * ```
 *
 * @since 0.1.0
 * @category Combinators
 */
export const runScript = (
  connection: Context.Tag.Service<RedisConnection>,
  s: Script,
  keys: ReadonlyArray<string>,
  args: ReadonlyArray<string | number>
): Effect.Effect<unknown, LLMError.SharedStateUnavailableError> => {
  const rest = [String(keys.length), ...keys, ...args.map(String)]
  return connection.send(["EVALSHA", s.sha, ...rest]).pipe(
    Effect.catchIf(
      (e) => e.message.includes("NOSCRIPT"),
      () => connection.send(["EVAL", s.source, ...rest])
    )
  )
}

// -----------------------------------------------------------------------------
// Redis: the scripts
// -----------------------------------------------------------------------------

const prelude = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(x) if x == 0 then return '0' end return string.format('%.0f', x) end
local function px(us) return math.ceil(us / 1000) + 1 end
`

/** KEYS: cooldown, op, tat_1..n. ARGV: n, op ttl ms, (max, period µs, cost) × n. */
const admitScript = script(
  "admit",
  `${prelude}
local n = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then return {1, '0', 0} end
local until_ = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > now then return {0, fmt(math.ceil(until_ - now)), 0} end
local new = {}
local wait, which = 0, 0
for i = 1, n do
  local max = tonumber(ARGV[3 * i])
  local period = tonumber(ARGV[3 * i + 1])
  local cost = tonumber(ARGV[3 * i + 2])
  if cost > max then return {-1, '0', i} end
  local tat = math.max(tonumber(redis.call('GET', KEYS[2 + i]) or '0'), now)
  local ntat = tat + cost * (period / max)
  local w = ntat - period - now
  if w > wait then wait = w; which = i end
  new[i] = ntat
end
if which > 0 then return {0, fmt(math.ceil(wait)), which} end
for i = 1, n do
  if new[i] > now then redis.call('SET', KEYS[2 + i], fmt(new[i]), 'PX', px(new[i] - now)) end
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return {1, '0', 0}
`
)

/** KEYS: tat, op. ARGV: max, period µs, delta, op ttl ms. */
const adjustScript = script(
  "adjust",
  `${prelude}
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[4]) then return 0 end
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
  + tonumber(ARGV[3]) * (tonumber(ARGV[2]) / tonumber(ARGV[1]))
if tat <= now then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], fmt(tat), 'PX', px(tat - now)) end
return 1
`
)

/** KEYS: tat, cooldown, op. ARGV: max, period µs, remaining, reset µs, op ttl ms. */
const observeScript = script(
  "observe",
  `${prelude}
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[5]) then return 0 end
local max = tonumber(ARGV[1])
local left = math.min(max, math.max(tonumber(ARGV[3]), 0))
local floor = now + (max - left) * (tonumber(ARGV[2]) / max)
if floor > tonumber(redis.call('GET', KEYS[1]) or '0') and floor > now then
  redis.call('SET', KEYS[1], fmt(floor), 'PX', px(floor - now))
end
local reset = tonumber(ARGV[4])
if left <= 0 and reset > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') < now + reset then
  redis.call('SET', KEYS[2], fmt(now + reset), 'PX', px(reset))
end
return 1
`
)

/** KEYS: cooldown, op. ARGV: wait µs, op ttl ms. */
const cooldownScript = script(
  "cooldown",
  `${prelude}
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then return 0 end
local wait = tonumber(ARGV[1])
local until_ = now + wait
if tonumber(redis.call('GET', KEYS[1]) or '0') >= until_ then return 0 end
redis.call('SET', KEYS[1], fmt(until_), 'PX', px(wait))
return 1
`
)

/** KEYS: cooldown. */
const cooldownReadScript = script(
  "cooldownRead",
  `${prelude}
local until_ = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > now then return fmt(math.ceil(until_ - now)) end
return '0'
`
)

/** KEYS: epoch. ARGV: a fresh id. Sets the epoch if absent; returns the one in force. */
const epochScript = script(
  "epoch",
  `redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])`
)

// -----------------------------------------------------------------------------
// Redis: the store
// -----------------------------------------------------------------------------

/**
 * Options of {@link layerConnection} (and so of {@link layerRedis}).
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import type { SharedState } from "@orchestify/providers"
 *
 * const options: SharedState.StoreOptions = { namespace: "prod", timeout: Duration.millis(250) }
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface StoreOptions {
  /** Every key lives under `{orx:<namespace>}:`. Default `"default"`. */
  readonly namespace?: string | undefined
  /** The most any store call may take; then it fails with `SharedStateUnavailableError`. Default 250 ms. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The usage outbox (see {@link UsageStore}). */
  readonly usage?: UsageOutboxOptions | undefined
}

const num = (u: unknown): number => (typeof u === "number" ? u : Number(u))

/**
 * The store over a {@link RedisConnection} of your own: the scripts, the key layout, the epoch
 * (set at start if absent), a timeout on every call.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * declare const connection: Layer.Layer<SharedState.RedisConnection>
 * const shared = Layer.provide(SharedState.layerConnection({ namespace: "prod" }), connection)
 * ```
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConnection = (
  options: StoreOptions = {}
): Layer.Layer<SharedState, LLMError.SharedStateUnavailableError, RedisConnection> =>
  Layer.scoped(
    SharedState,
    Effect.flatMap(RedisConnection, (connection) => makeRedis(connection, options)).pipe(
      Effect.tap((service) => SharedUsage.start(service.usage))
    )
  )

/**
 * Builds the Redis store over a connection (see {@link layerConnection}).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const program = Effect.flatMap(SharedState.RedisConnection, (c) => SharedState.makeRedis(c, { namespace: "prod" }))
 * ```
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeRedis = (
  connection: Context.Tag.Service<RedisConnection>,
  options: StoreOptions = {}
): Effect.Effect<Service, LLMError.SharedStateUnavailableError> =>
  Effect.gen(function*() {
    const namespace = options.namespace ?? "default"
    const timeout = Duration.decode(options.timeout ?? Duration.millis(250))
    const prefix = `{orx:${namespace}}:`
    const lastError = yield* Ref.make(Option.none<string>())
    // `Effect.timeoutFail` forks a fiber per call (measured: a third of the throughput at 64 in
    // flight); a connection that times its own commands needs none.
    const bounded = connection.commandTimeout !== undefined &&
      Duration.lessThanOrEqualTo(connection.commandTimeout, timeout)
    const call = <A>(operation: string, effect: Effect.Effect<A, LLMError.SharedStateUnavailableError>) =>
      (bounded ? effect : Effect.timeoutFail(effect, {
        duration: timeout,
        onTimeout: () => unavailable(operation, `shared state: no answer within ${Duration.format(timeout)}`)
      })).pipe(
        Effect.mapError((
          e
        ) => (e.operation === undefined || e.operation === "send" ? unavailable(operation, e.message) : e)),
        Effect.tapError((e) => Ref.set(lastError, Option.some(e.message)))
      )
    const run = (operation: string, s: Script, keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) =>
      call(operation, runScript(connection, s, keys, args))

    const epochKey = `${prefix}epoch`
    const epoch = String(yield* run("epoch", epochScript, [epochKey], [Crypto.randomUUID()]))
    const opKey = (opId: string) => `${prefix}op:${opId}`
    const coolKey = (key: string) => `${prefix}cool:${key}`
    const tatKey = (key: string, name: string) => `${prefix}rl:${key}:${name}`

    const limiter: LimiterStore = {
      admit: (key, costs, opId) =>
        Effect.map(
          run(
            "limiter.admit",
            admitScript,
            [coolKey(key), opKey(`${opId}:admit`), ...costs.map((c) => tatKey(key, c.name))],
            [costs.length, dedupeMillis, ...costs.flatMap((c) => [c.max, micros(c.period), c.cost])]
          ),
          (reply): Admission => {
            const [status, wait, index] = reply as [unknown, unknown, unknown]
            const limit = num(index) === 0 ? "cooldown" : costs[num(index) - 1]!.name
            if (num(status) === 1) return { _tag: "Admitted" }
            if (num(status) === -1) return { _tag: "TooLarge", limit }
            return { _tag: "Wait", wait: Duration.micros(BigInt(String(wait))), limit }
          }
        ),
      adjust: (key, limit, delta, opId) =>
        Effect.asVoid(
          run("limiter.adjust", adjustScript, [tatKey(key, limit.name), opKey(opId)], [
            limit.max,
            micros(limit.period),
            delta,
            dedupeMillis
          ])
        ),
      observe: (key, limit, remaining, reset, opId) =>
        Effect.asVoid(
          run("limiter.observe", observeScript, [tatKey(key, limit.name), coolKey(key), opKey(opId)], [
            limit.max,
            micros(limit.period),
            remaining,
            micros(reset),
            dedupeMillis
          ])
        ),
      cooldown: (key, wait, opId) =>
        Effect.asVoid(
          run("limiter.cooldown", cooldownScript, [coolKey(key), opKey(opId)], [micros(wait), dedupeMillis])
        ),
      cooldownRemaining: (key) =>
        Effect.map(run("limiter.cooldownRemaining", cooldownReadScript, [coolKey(key)], []), (reply) => {
          const us = BigInt(String(reply))
          return us > 0n ? Option.some(Duration.micros(us)) : Option.none()
        })
    }
    const health = Effect.gen(function*() {
      const current = yield* call("health", connection.send(["GET", epochKey]))
      return {
        backend: "redis" as const,
        epoch,
        epochIntact: current === epoch,
        lastError: yield* Ref.get(lastError)
      }
    })
    const redis = { prefix, epoch, run }
    // shared usage (issue 14): through the outbox; `layerRedis` / `layerConnection` start its flusher.
    const usage = SharedUsage.make(SharedUsage.redisBackend(redis), false, options.usage)
    return { backend: "redis", namespace, limiter, health, usage, redis } satisfies Service
  })

/**
 * Options of {@link layerRedis}.
 *
 * @example
 * ```ts
 * import { Duration, Redacted } from "effect"
 * import type { SharedState } from "@orchestify/providers"
 *
 * const options: SharedState.RedisOptions = {
 *   url: Redacted.make("redis://:secret@127.0.0.1:6379"),
 *   namespace: "prod",
 *   timeout: Duration.millis(250)
 * }
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface RedisOptions extends StoreOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://`); a `Redacted`, so a password never shows. */
  readonly url: Redacted.Redacted<string>
  /** How long the first connection may take before the layer fails. Default 1 s. */
  readonly connectTimeout?: Duration.DurationInput | undefined
}

/** The few members of an `@redis/client` client this module uses. */
interface NodeRedisClient {
  connect(): Promise<unknown>
  sendCommand(args: ReadonlyArray<string>, options?: { readonly abortSignal?: AbortSignal }): Promise<unknown>
  close(): Promise<void>
  destroy(): void
  on(event: "error", listener: (error: unknown) => void): unknown
}

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * A scoped `@redis/client` connection as a {@link RedisConnection}: connected when the scope
 * opens (or failing with `SharedStateUnavailableError` within `connectTimeout`), no offline
 * queue (a command while disconnected fails at once instead of waiting), reconnecting in the
 * background, closed when the scope closes: a close that loses its reply is ignored, never a defect.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const connection = yield* SharedState.connectRedis({ url: Redacted.make("redis://127.0.0.1:6379") })
 *   return yield* connection.send(["PING"])
 * }))
 * ```
 *
 * @since 0.1.0
 * @category Constructors
 */
export const connectRedis = (
  options: RedisOptions
): Effect.Effect<Context.Tag.Service<RedisConnection>, LLMError.SharedStateUnavailableError, Scope.Scope> =>
  Effect.gen(function*() {
    const { createClient } = yield* Effect.tryPromise({
      try: () => import("@redis/client"),
      catch: () =>
        unavailable(
          "connect",
          "SharedState.layerRedis needs the optional peer dependency @redis/client (npm i @redis/client)"
        )
    })
    const connectTimeout = Duration.toMillis(Duration.decode(options.connectTimeout ?? Duration.seconds(1)))
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const c = createClient({
          url: Redacted.value(options.url),
          disableOfflineQueue: true,
          socket: {
            connectTimeout,
            reconnectStrategy: (retries: number) => Math.min(25 * 2 ** retries, 1_000)
          }
        }) as unknown as NodeRedisClient
        // Errors surface on the commands; an unhandled "error" event would crash the process.
        c.on("error", () => {})
        return c
      }),
      (c) =>
        Effect.tryPromise(() => c.close()).pipe(
          Effect.timeout(Duration.millis(500)),
          Effect.catchAllCause(() => Effect.void),
          Effect.zipRight(Effect.sync(() => {
            try {
              c.destroy()
            } catch {
              // already closed
            }
          }))
        )
    )
    yield* Effect.tryPromise({
      try: () => client.connect(),
      catch: (e) => unavailable("connect", `shared state: cannot connect to Redis: ${describe(e)}`)
    }).pipe(
      Effect.timeoutFail({
        duration: Duration.millis(connectTimeout),
        onTimeout: () => unavailable("connect", `shared state: no connection to Redis within ${connectTimeout} ms`)
      })
    )
    const timeout = Duration.decode(options.timeout ?? Duration.millis(250))
    const millis = Duration.toMillis(timeout)
    const message = `shared state: no answer within ${Duration.format(timeout)}`
    return {
      commandTimeout: timeout,
      // One timer per command; interruption aborts the command.
      send: (args) =>
        Effect.async<unknown, LLMError.SharedStateUnavailableError>((resume) => {
          let done = false
          const controller = new AbortController()
          const finish = (effect: Effect.Effect<unknown, LLMError.SharedStateUnavailableError>) => {
            if (done) return
            done = true
            clearTimeout(timer)
            resume(effect)
          }
          const timer = setTimeout(() => {
            finish(Effect.fail(unavailable("send", message)))
            controller.abort()
          }, millis)
          client.sendCommand(args, { abortSignal: controller.signal }).then(
            (reply) => finish(Effect.succeed(reply)),
            (e) => finish(Effect.fail(unavailable("send", describe(e))))
          )
          return Effect.sync(() => {
            done = true
            clearTimeout(timer)
            controller.abort()
          })
        })
    }
  })

/**
 * The store on Redis 7 or Valkey through `@redis/client` (install it: it is an optional peer
 * dependency): {@link connectRedis} + {@link layerConnection}. The connection lives as long as
 * the layer's scope. Run the state instance with `appendonly yes` and `maxmemory-policy noeviction`.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const shared = SharedState.layerRedis({ url: Redacted.make("redis://127.0.0.1:6379"), namespace: "prod" })
 * const program = Effect.flatMap(SharedState.SharedState, (s) => s.health)
 * // Effect.runPromise(Effect.provide(program, shared))
 * ```
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerRedis = (options: RedisOptions): Layer.Layer<SharedState, LLMError.SharedStateUnavailableError> =>
  Layer.scoped(
    SharedState,
    Effect.flatMap(connectRedis(options), (connection) => makeRedis(connection, options)).pipe(
      Effect.tap((service) => SharedUsage.start(service.usage))
    )
  )

// -----------------------------------------------------------------------------
// Shared usage (issue 14): begin — the logic lives in internal/shared/usage.ts
// -----------------------------------------------------------------------------

/**
 * The counters of one call (or a sum of calls) on one provider and model, as the usage store adds
 * them; money in integer nano-dollars.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const program = Effect.flatMap(SharedState.SharedState, (s) =>
 *   s.usage.add(SharedState.usageEntry("openai", { model: "gpt-4o", tokens: undefined, costUsd: undefined, failed: false })))
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export type UsageEntry = SharedUsage.Entry

/**
 * One settled call as a {@link UsageEntry}.
 *
 * @example
 * ```ts
 * import { SharedState, Usage } from "@orchestify/providers"
 *
 * const entry = SharedState.usageEntry("openai", {
 *   model: "gpt-4o", tokens: Usage.tokens({ inputTokens: 10 }), costUsd: 0.0001, failed: false
 * })
 * ```
 *
 * @since 0.1.0
 * @category Constructors
 */
export const usageEntry: (provider: string, call: Usage.CallRecord) => UsageEntry = SharedUsage.entryOf

/**
 * Options of the Redis store's usage outbox.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import type { SharedState } from "@orchestify/providers"
 *
 * const usage: SharedState.UsageOutboxOptions = { capacity: 10_000, batchSize: 500, interval: Duration.millis(200) }
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export type UsageOutboxOptions = SharedUsage.OutboxOptions

/**
 * Usage totals across every process on the store. On Redis, `add` goes to a bounded in-process
 * outbox (never the network, never a failure), flushed in batches on an interval, on `flush` and
 * when the layer's scope closes; each batch is one atomic script, applied once per batch id, so a
 * flush retried after a lost reply adds nothing twice. While Redis is unreachable the outbox keeps
 * the calls; when full it drops the oldest, with a warning and the
 * `orchestify_shared_usage_dropped_calls` counter. On the memory store `add` applies at once.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const calls = Effect.flatMap(SharedState.SharedState, (s) => Effect.map(s.usage.totals, (u) => u.calls))
 * Effect.runPromise(Effect.provide(calls, SharedState.layerMemory)) // 0
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface UsageStore {
  /** `true` on the memory store: adds land at once, no outbox. */
  readonly direct: boolean
  readonly add: (entry: UsageEntry) => Effect.Effect<void>
  /** Sends everything in the outbox now; fails (keeping it) when the store is unavailable. */
  readonly flush: Effect.Effect<void, LLMError.SharedStateUnavailableError>
  /** The totals of every process (what has reached the store). */
  readonly totals: Effect.Effect<Usage.TokenUsage, LLMError.SharedStateUnavailableError>
  /** The totals per provider id. */
  readonly byProvider: Effect.Effect<Readonly<Record<string, Usage.TokenUsage>>, LLMError.SharedStateUnavailableError>
  /** Calls in this process' outbox, not yet acknowledged by the store. */
  readonly pending: Effect.Effect<number>
}

/**
 * The usage store of the `SharedState` in context.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const totals = Effect.flatMap(SharedState.usage, (u) => u.totals)
 * ```
 *
 * @since 0.1.0
 * @category Accessors
 */
export const usage: Effect.Effect<UsageStore, never, SharedState> = Effect.map(SharedState, (s) => s.usage)

/**
 * The counter of calls dropped from a full usage outbox.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { SharedState } from "@orchestify/providers"
 *
 * const lost = Metric.value(SharedState.usageDroppedCalls)
 * ```
 *
 * @since 0.1.0
 * @category Metrics
 */
export const usageDroppedCalls = SharedUsage.droppedCalls

// Shared usage (issue 14): end
