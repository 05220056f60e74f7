/**
 * Usage totals shared across processes (issue 14, item 3; failure semantics, item 4).
 *
 * - A backend applies one batch of per-`provider|model` deltas atomically, once per batch id
 *   (memory: a Map; Redis: one Lua script, `HINCRBY` on `{orx:<ns>}:usage` behind `SET op NX`).
 * - The outbox (Redis): `add` never touches the network; batches leave on an interval, on `flush`
 *   and on scope close. A batch keeps its id until Redis acknowledges it, so a flush retried after
 *   a lost reply adds nothing twice. Redis down: the entries stay (bounded: the oldest are dropped,
 *   with a warning and the `orchestify_shared_usage_dropped_calls` counter).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import type * as LLMError from "../../LLMError.js"
import type * as SharedState from "../../SharedState.js"
import * as Usage from "../../Usage.js"

/** The counters of one call (or a sum of calls) on one provider and model; money in nano-dollars. */
export interface Entry {
  readonly provider: string
  readonly model: string
  readonly calls: number
  readonly failures: number
  readonly inputTokens: number
  readonly outputTokens: number
  readonly cacheReadTokens: number
  readonly cacheWriteTokens: number
  readonly reasoningTokens: number
  readonly nanoUsd: number
  readonly unpricedCalls: number
  readonly unmeteredCalls: number
}

const stats = [
  "calls",
  "failures",
  "inputTokens",
  "outputTokens",
  "cacheReadTokens",
  "cacheWriteTokens",
  "reasoningTokens",
  "nanoUsd",
  "unpricedCalls",
  "unmeteredCalls"
] as const
type Stat = typeof stats[number]

/** One settled call as an entry. */
export const entryOf = (provider: string, call: Usage.CallRecord): Entry => {
  const t = call.tokens ?? Usage.emptyTokens
  const unmetered = call.tokens === undefined
  return {
    provider,
    model: call.model,
    calls: 1,
    failures: call.failed ? 1 : 0,
    inputTokens: t.inputTokens,
    outputTokens: t.outputTokens,
    cacheReadTokens: t.cacheReadTokens,
    cacheWriteTokens: t.cacheWriteTokens,
    reasoningTokens: t.reasoningTokens,
    nanoUsd: Math.round((call.costUsd ?? 0) * 1e9),
    unpricedCalls: !unmetered && call.costUsd === undefined ? 1 : 0,
    unmeteredCalls: unmetered ? 1 : 0
  }
}

const sep = "|"
const fieldOf = (provider: string, model: string, stat: Stat) => `${provider}${sep}${model}${sep}${stat}`

/** Sums entries per provider and model: the fields and deltas of one batch. */
const fieldsOf = (entries: ReadonlyArray<Entry>): Map<string, number> => {
  const out = new Map<string, number>()
  for (const e of entries) {
    for (const s of stats) {
      if (e[s] === 0) continue
      const f = fieldOf(e.provider, e.model, s)
      out.set(f, (out.get(f) ?? 0) + e[s])
    }
  }
  return out
}

/** Totals per provider from `field -> value` rows. */
const totalsOf = (rows: Iterable<readonly [string, number]>): Record<string, Usage.TokenUsage> => {
  const acc = new Map<string, Map<string, Record<Stat, number>>>()
  for (const [field, value] of rows) {
    const first = field.indexOf(sep)
    const last = field.lastIndexOf(sep)
    if (first < 0 || last <= first) continue
    const provider = field.slice(0, first)
    const model = field.slice(first + 1, last)
    const stat = field.slice(last + 1) as Stat
    if (!stats.includes(stat)) continue
    const models = acc.get(provider) ?? new Map<string, Record<Stat, number>>()
    acc.set(provider, models)
    const m = models.get(model) ?? (Object.fromEntries(stats.map((s) => [s, 0])) as Record<Stat, number>)
    models.set(model, m)
    m[stat] += value
  }
  const out: Record<string, Usage.TokenUsage> = {}
  for (const [provider, models] of acc) {
    let total = Usage.empty
    for (const [model, m] of models) {
      const { nanoUsd, ...rest } = m
      const usage: Usage.ModelUsage = { ...rest, costUsd: nanoUsd / 1e9 }
      total = Usage.combine(total, { ...usage, byModel: { [model]: usage } })
    }
    out[provider] = total
  }
  return out
}

/** Where batches land. */
export interface Backend {
  readonly apply: (
    batchId: string,
    fields: ReadonlyMap<string, number>
  ) => Effect.Effect<void, LLMError.SharedStateUnavailableError>
  readonly read: Effect.Effect<ReadonlyArray<readonly [string, number]>, LLMError.SharedStateUnavailableError>
}

const dedupeMillis = 24 * 3_600_000

const script = (name: string, source: string): SharedState.Script => ({
  name,
  source,
  sha: Crypto.createHash("sha1").update(source).digest("hex")
})

/** KEYS: usage hash, op. ARGV: op ttl ms, (field, delta) × n. One batch, all or nothing, once per op. */
const applyScript = script(
  "usage.apply",
  `if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 0 end
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1`
)
const readScript = script("usage.read", "return redis.call('HGETALL', KEYS[1])")

/** The Redis backend on a store's script runner. */
export const redisBackend = (redis: SharedState.RedisScripts): Backend => {
  const apply = applyScript
  const read = readScript
  const key = `${redis.prefix}usage`
  return {
    apply: (batchId, fields) =>
      fields.size === 0 ? Effect.void : Effect.asVoid(
        redis.run("usage.add", apply, [key, `${redis.prefix}op:usage:${batchId}`], [
          dedupeMillis,
          ...Array.from(fields).flatMap(([f, v]) => [f, v])
        ])
      ),
    read: Effect.map(redis.run("usage.totals", read, [key], []), (reply) => {
      const flat = Array.isArray(reply) ? reply.map(String) : []
      const rows: Array<readonly [string, number]> = []
      for (let i = 0; i + 1 < flat.length; i += 2) rows.push([flat[i]!, Number(flat[i + 1])])
      return rows
    })
  }
}

/** The memory backend: the same contract in one process. */
export const memoryBackend = (): Backend => {
  const values = new Map<string, number>()
  const seen = new Set<string>()
  return {
    apply: (batchId, fields) =>
      Effect.sync(() => {
        // "" (the direct store's adds, never resent): no id to remember.
        if (batchId !== "") {
          if (seen.has(batchId)) return
          seen.add(batchId)
        }
        for (const [f, v] of fields) values.set(f, (values.get(f) ?? 0) + v)
      }),
    read: Effect.sync(() => Array.from(values))
  }
}

/** What was lost when the outbox was full. */
export const droppedCalls = Metric.counter("orchestify_shared_usage_dropped_calls", {
  description: "Calls whose usage was dropped from a full shared-usage outbox (Redis unreachable too long)",
  incremental: true
})

/** Options of the outbox. */
export interface OutboxOptions {
  /** Most calls kept while Redis is unreachable (besides one batch in flight). Default 10,000. */
  readonly capacity?: number | undefined
  /** Most calls per batch. Default 500. */
  readonly batchSize?: number | undefined
  /** How often the outbox flushes. Default 200 ms. */
  readonly interval?: Duration.DurationInput | undefined
}

/** Builds the store: on the memory backend `add` applies at once; otherwise through the outbox. */
export const make = (
  backend: Backend,
  direct: boolean,
  options: OutboxOptions = {}
): SharedState.UsageStore & { readonly run: Effect.Effect<void, never, Scope.Scope> } => {
  const capacity = Math.max(1, options.capacity ?? 10_000)
  const batchSize = Math.max(1, options.batchSize ?? 500)
  const interval = Duration.decode(options.interval ?? Duration.millis(200))
  let pending: Array<Entry> = []
  let inflight:
    | { readonly id: string; readonly fields: ReadonlyMap<string, number>; readonly calls: number }
    | undefined
  const lock = Effect.unsafeMakeSemaphore(1)
  let warned = false

  const flushOnce: Effect.Effect<boolean, LLMError.SharedStateUnavailableError> = Effect.suspend(() => {
    if (inflight === undefined) {
      if (pending.length === 0) return Effect.succeed(false)
      const taken = pending.slice(0, batchSize)
      pending = pending.slice(taken.length)
      inflight = { id: Crypto.randomUUID(), fields: fieldsOf(taken), calls: taken.length }
    }
    const batch = inflight
    return Effect.as(
      Effect.tap(backend.apply(batch.id, batch.fields), () =>
        Effect.sync(() => {
          if (inflight === batch) inflight = undefined
          warned = false
        })),
      true
    )
  })
  /** Every batch, until the outbox is empty or the store fails (the batch keeps its id for the retry). */
  const flush: Effect.Effect<void, LLMError.SharedStateUnavailableError> = lock.withPermits(1)(
    Effect.asVoid(Effect.iterate(true, { while: (more) => more, body: () => flushOnce }))
  )
  const add = (entry: Entry): Effect.Effect<void> =>
    direct
      ? Effect.orDie(backend.apply("", fieldsOf([entry])))
      : Effect.suspend(() => {
        pending.push(entry)
        if (pending.length <= capacity) return Effect.void
        const lost = pending.length - capacity
        pending = pending.slice(lost)
        // One warning per outage (until a batch lands again), the counter for every call.
        const warn = !warned
        warned = true
        return Effect.zipRight(
          Metric.incrementBy(droppedCalls, lost),
          warn
            ? Effect.logWarning(
              `shared usage: outbox full (${capacity} calls), the store unreachable; dropping the oldest calls`
            )
            : Effect.void
        )
      })
  const byProvider = Effect.map(backend.read, (rows) => totalsOf(rows))
  const totals = Effect.map(
    byProvider,
    (all) => Object.values(all).reduce((acc, u) => Usage.combine(acc, u), Usage.empty)
  )
  const run: Effect.Effect<void, never, Scope.Scope> = direct ? Effect.void : Effect.zipRight(
    Effect.forkScoped(
      Effect.forever(Effect.zipRight(Effect.sleep(interval), Effect.ignore(flush)))
    ),
    Effect.addFinalizer(() =>
      Effect.catchAll(flush, (e) =>
        Effect.logWarning(
          `shared usage: ${pending.length + (inflight?.calls ?? 0)} calls not flushed at close: ${e.message}`
        ))
    )
  ).pipe(Effect.asVoid)
  return {
    direct,
    add,
    flush,
    totals,
    byProvider,
    pending: Effect.sync(() => pending.length + (inflight?.calls ?? 0)),
    run
  }
}

/** Starts a store's flusher for the scope (and its last flush at close); nothing for a direct store. */
export const start = (store: SharedState.UsageStore): Effect.Effect<void, never, Scope.Scope> =>
  "run" in store ? (store as ReturnType<typeof make>).run : Effect.void
