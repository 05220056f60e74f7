/**
 * Client-side rate limits: requests and tokens per window per provider and model (`rpm`, `tpm`,
 * and Anthropic's `itpm` / `otpm`), kept in `SharedState` so that every worker on one store
 * shares them.
 *
 * - All limits of a call are checked and consumed in one step before the call (GCRA: a bucket of
 *   `max` that refills continuously over `period`, one minute unless told).
 * - Tokens are reserved from the provider's forecast (`LLM.Service.forecast`: the prompt plus
 *   `maxTokens`), and corrected by the actual usage when the reply ends (a refund, usually).
 * - A call waits up to `maxWait` for its turn, then fails with a local `RateLimitError`:
 *   `retryAfter` set, `status` absent.
 * - A provider 429 with a `retryAfter` sets a cooldown on its provider and model: no caller on
 *   the store (any worker) sends to it until it ends.
 * - The provider's rate-limit headers, on every reply (`LLMResponse.rateLimits`) and on a 429,
 *   tighten the limits: what it says is left is the most the bucket holds; nothing left is a
 *   cooldown until its reset.
 * - When the store is unavailable (Redis down or slow), limits fall back to local state in this
 *   process, with a warning in the log and the {@link fallbacks} metric, and go back to the store
 *   after `retryStoreAfter`. Never a hang (every store call has a timeout), never a defect.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Redacted } from "effect"
 * import { LLM, Message, OpenAI, RateLimit, SharedState } from "@orchestify/providers"
 *
 * const Limited = RateLimit.layer({
 *   limits: { "openai:gpt-4o": { rpm: 500, tpm: 200_000 } },
 *   maxWait: "10 seconds"
 * }).pipe(
 *   Layer.provide(OpenAI.layer({ apiKey: Redacted.make("sk-..."), defaultModel: "gpt-4o" })),
 *   // Shared by every worker on this Redis; without it, the limits are this process's own.
 *   Layer.provide(SharedState.layerRedis({ url: Redacted.make("redis://127.0.0.1:6379"), namespace: "prod" }))
 * )
 *
 * const program = LLM.complete({ messages: [Message.user("Hi")], maxTokens: 64 })
 * // Effect.runPromise(Effect.provide(program, Limited))
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as LLM from "./LLM.js"
import * as LLMError from "./LLMError.js"
import type * as Response from "./Response.js"
import * as SharedState from "./SharedState.js"
import type * as Usage from "./Usage.js"

/**
 * The limits of one provider and model, per `period` (default one minute): requests (`rpm`),
 * tokens (`tpm`: prompt + output), and Anthropic's separate prompt (`itpm`) and output (`otpm`)
 * token limits. Leave out what does not apply.
 *
 * @example
 * ```ts
 * import type { RateLimit } from "@orchestify/providers"
 *
 * const claude: RateLimit.Limits = { rpm: 50, itpm: 30_000, otpm: 8_000 }
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface Limits {
  readonly rpm?: number | undefined
  readonly tpm?: number | undefined
  readonly itpm?: number | undefined
  readonly otpm?: number | undefined
  /** The window the numbers are per. Default one minute. */
  readonly period?: Duration.DurationInput | undefined
}

/**
 * Options of {@link layer} and {@link withRateLimit}.
 *
 * @example
 * ```ts
 * import type { RateLimit } from "@orchestify/providers"
 *
 * const options: RateLimit.Options = {
 *   // "<providerId>:<model>" for one model; "<providerId>" for each model of the provider.
 *   limits: { "openai:gpt-4o": { rpm: 500, tpm: 200_000 }, anthropic: { rpm: 50, itpm: 30_000, otpm: 8_000 } },
 *   maxWait: "30 seconds"
 * }
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /**
   * Keyed `"<providerId>:<model>"` (one model), or `"<providerId>"` (the same limits for each
   * model of the provider, each model with buckets of its own). The exact key wins.
   */
  readonly limits: Readonly<Record<string, Limits>>
  /** The longest a call waits for its turn before failing with `RateLimitError`. Default 30 s. */
  readonly maxWait?: Duration.DurationInput | undefined
  /** After the store failed, use local limits for this long before trying the store again. Default 1 s. */
  readonly retryStoreAfter?: Duration.DurationInput | undefined
  /**
   * The name buckets are kept under in place of the provider id (`"<bucket>:<model>"`, and the
   * `limits` keys with it): e.g. `"agent:planner"` for limits of one agent's calls apart from its
   * provider's.
   */
  readonly bucket?: string | undefined
}

/**
 * Counts the store calls that fell back to local limits (the store unavailable or slow), tagged
 * by `operation`.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { RateLimit } from "@orchestify/providers"
 *
 * const count = Effect.map(Metric.value(RateLimit.fallbacks), (state) => state.count)
 * ```
 *
 * @since 0.1.0
 * @category Metrics
 */
export const fallbacks: Metric.Metric.Counter<number> = Metric.counter("orchestify_rate_limit_store_fallbacks_total", {
  description: "Rate-limit store calls that fell back to local limits because the shared state was unavailable"
})

/**
 * What a provider's rate-limit headers say is left of one limit: OpenAI's
 * `x-ratelimit-remaining-requests` / `-tokens` with `x-ratelimit-reset-*` (durations such as
 * `6m0s`, `20ms`), Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-remaining`
 * with `-reset` (an RFC 3339 time).
 *
 * @example
 * ```ts
 * import { RateLimit } from "@orchestify/providers"
 *
 * RateLimit.parseHeaders({ "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s" }, new Date())
 * // [{ limit: "rpm", remaining: 0, reset: 360 seconds }]
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface Observed {
  readonly limit: "rpm" | "tpm" | "itpm" | "otpm"
  readonly remaining: number
  readonly reset: Duration.Duration
}

const parseGoDuration = (text: string): Duration.Duration | undefined => {
  let millis = 0
  let any = false
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    any = true
    const n = Number(amount)
    millis += unit === "ms" ? n : unit === "s" ? n * 1000 : unit === "m" ? n * 60_000 : n * 3_600_000
  }
  return any ? Duration.millis(millis) : undefined
}

/**
 * Reads a provider's rate-limit headers (see {@link Observed}); `now` turns Anthropic's reset
 * times into waits. Unknown or malformed headers are skipped.
 *
 * @example
 * ```ts
 * import { RateLimit } from "@orchestify/providers"
 *
 * const left = RateLimit.parseHeaders({ "anthropic-ratelimit-output-tokens-remaining": "1200" }, new Date())
 * ```
 *
 * @since 0.1.0
 * @category Accessors
 */
export const parseHeaders = (headers: Readonly<Record<string, string>>, now: Date): ReadonlyArray<Observed> => {
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v.trim()]))
  const out: Array<Observed> = []
  const read = (
    limit: Observed["limit"],
    remainingName: string,
    resetName: string,
    reset: (v: string) => number | undefined
  ) => {
    const remaining = Number(lower.get(remainingName))
    if (!lower.has(remainingName) || !Number.isFinite(remaining)) return
    const resetText = lower.get(resetName)
    const millis = resetText === undefined ? 0 : reset(resetText) ?? 0
    out.push({ limit, remaining, reset: Duration.millis(Math.max(0, millis)) })
  }
  const go = (v: string) => parseGoDuration(v) === undefined ? undefined : Duration.toMillis(parseGoDuration(v)!)
  const at = (v: string) => {
    const t = Date.parse(v)
    return Number.isNaN(t) ? undefined : t - now.getTime()
  }
  read("rpm", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", go)
  read("tpm", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens", go)
  read("rpm", "anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset", at)
  read("tpm", "anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset", at)
  read("itpm", "anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset", at)
  read("otpm", "anthropic-ratelimit-output-tokens-remaining", "anthropic-ratelimit-output-tokens-reset", at)
  return out
}

interface Resolved {
  readonly key: string
  readonly period: Duration.Duration
  readonly limits: Limits
}

const tokenCosts = (
  limits: Limits,
  input: number,
  output: number
): Array<{ name: string; max: number; cost: number }> => {
  const costs: Array<{ name: string; max: number; cost: number }> = []
  if (limits.tpm !== undefined) costs.push({ name: "tpm", max: limits.tpm, cost: input + output })
  if (limits.itpm !== undefined) costs.push({ name: "itpm", max: limits.itpm, cost: input })
  if (limits.otpm !== undefined) costs.push({ name: "otpm", max: limits.otpm, cost: output })
  return costs
}

/** What counts against each token limit once the reply is known (cache reads do not count toward `itpm`). */
const actualCosts = (limits: Limits, usage: Usage.Tokens) =>
  tokenCosts(limits, usage.inputTokens, usage.outputTokens).map((c) =>
    c.name === "itpm" ? { ...c, cost: usage.inputTokens - usage.cacheReadTokens } : c
  )

/** The stores a limiter uses: the shared one, and this process's own for when it is unavailable. */
interface Stores {
  readonly shared: SharedState.Service
  readonly local: SharedState.Service
  /** Clock millis until which the shared store is skipped. */
  readonly downUntil: Ref.Ref<number>
  readonly retryAfterMillis: number
}

/** Runs `f` on the shared store, or on the local one when the shared one is (or just became) unavailable. */
const onStore = <A>(
  stores: Stores,
  operation: string,
  f: (store: SharedState.Service) => Effect.Effect<A, LLMError.SharedStateUnavailableError>
): Effect.Effect<readonly [A, SharedState.Service]> => {
  const local = Effect.map(f(stores.local), (a) => [a, stores.local] as const).pipe(
    Effect.tap(() => Metric.increment(Metric.tagged(fallbacks, "operation", operation))),
    // The local store never fails; should it, a call is not refused for it.
    Effect.orDie
  )
  if (stores.shared === stores.local) {
    return Effect.orDie(Effect.map(f(stores.local), (a) => [a, stores.local] as const))
  }
  return Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    if (now < (yield* Ref.get(stores.downUntil))) return yield* local
    return yield* Effect.map(f(stores.shared), (a) => [a, stores.shared] as const).pipe(
      Effect.catchTag("SharedStateUnavailableError", (error) =>
        Effect.zipRight(
          Effect.zipRight(
            Ref.set(stores.downUntil, now + stores.retryAfterMillis),
            Effect.logWarning(
              `rate limit: shared state unavailable (${error.message}); using local limits for ${stores.retryAfterMillis} ms`
            ).pipe(Effect.annotateLogs({ operation }))
          ),
          local
        ))
    )
  })
}

const makeStores = (options: Options): Effect.Effect<Stores> =>
  Effect.gen(function*() {
    const local = yield* SharedState.make
    const shared = Option.getOrElse(yield* Effect.serviceOption(SharedState.SharedState), () => local)
    return {
      shared,
      local,
      downUntil: yield* Ref.make(0),
      retryAfterMillis: Duration.toMillis(Duration.decode(options.retryStoreAfter ?? Duration.seconds(1)))
    }
  })

/** One call's reservation: the store that admitted it and the tokens it reserved per limit. */
interface Reservation {
  readonly id: string
  readonly store: SharedState.Service
  readonly resolved: Resolved
  readonly reserved: ReadonlyArray<{ readonly name: string; readonly max: number; readonly cost: number }>
}

const protect = (llm: LLM.Service, options: Options, stores: Stores): LLM.Service => {
  const maxWait = Duration.decode(options.maxWait ?? Duration.seconds(30))
  const resolve = (request: LLM.CompletionRequest): Resolved | undefined => {
    const model = request.model ?? llm.defaultModel
    const bucket = options.bucket ?? llm.providerId
    const key = `${bucket}:${model}`
    const limits = options.limits[key] ?? options.limits[bucket]
    if (limits === undefined) return undefined
    return { key, limits, period: Duration.decode(limits.period ?? Duration.minutes(1)) }
  }

  const refused = (message: string, retryAfter: Option.Option<Duration.Duration>, retryable?: boolean) =>
    new LLMError.RateLimitError({
      provider: llm.providerId,
      message,
      retryAfter,
      ...(retryable === undefined ? {} : { retryable })
    })

  const admit = (
    request: LLM.CompletionRequest,
    resolved: Resolved
  ): Effect.Effect<Reservation, LLMError.LLMError> =>
    Effect.gen(function*() {
      const { key, limits, period } = resolved
      const needsTokens = limits.tpm !== undefined || limits.itpm !== undefined || limits.otpm !== undefined
      const forecast = needsTokens ? yield* llm.forecast(request) : undefined
      const reserved = forecast === undefined ? [] : tokenCosts(limits, forecast.inputTokens, forecast.maxOutputTokens)
      const costs: Array<SharedState.LimitCost> = [
        ...(limits.rpm === undefined ? [] : [{ name: "rpm", max: limits.rpm, period, cost: 1 }]),
        ...reserved.map((c) => ({ ...c, period }))
      ]
      const id = Crypto.randomUUID()
      const started = yield* Clock.currentTimeMillis
      while (true) {
        const [admission, store] = yield* onStore(stores, "admit", (s) => s.limiter.admit(key, costs, id))
        if (admission._tag === "Admitted") return { id, store, resolved, reserved }
        if (admission._tag === "TooLarge") {
          const limit = costs.find((c) => c.name === admission.limit)
          return yield* Effect.fail(refused(
            `rate limit: the call needs ${limit?.cost} ${admission.limit} units, more than the limit of ${limit?.max} on ${key}`,
            Option.none(),
            false
          ))
        }
        const elapsed = (yield* Clock.currentTimeMillis) - started
        if (elapsed + Duration.toMillis(admission.wait) > Duration.toMillis(maxWait)) {
          return yield* Effect.fail(refused(
            `rate limit: ${key} over its ${admission.limit} limit; a turn in ${
              Duration.format(Duration.millis(Math.ceil(Duration.toMillis(admission.wait))))
            }, more than maxWait ${Duration.format(maxWait)}`,
            Option.some(admission.wait)
          ))
        }
        yield* Effect.sleep(admission.wait)
      }
    })

  /** Corrects each reserved token limit to the actual usage; the 429 case refunds all of it. */
  const settle = (r: Reservation, usage: Usage.Tokens | "refund"): Effect.Effect<void> => {
    const actual = usage === "refund" ? [] : actualCosts(r.resolved.limits, usage)
    return Effect.forEach(r.reserved, (c) => {
      const delta = (actual.find((a) => a.name === c.name)?.cost ?? 0) - c.cost
      if (delta === 0) return Effect.void
      const limit = { name: c.name, max: c.max, period: r.resolved.period }
      const opId = `${r.id}:adjust:${c.name}`
      // The store that admitted the call corrects it; if it is the shared one and it is down now,
      // the correction is lost (conservative for a refund) rather than applied to the wrong store.
      return r.store === stores.local
        ? Effect.orDie(r.store.limiter.adjust(r.resolved.key, limit, delta, opId))
        : Effect.asVoid(Effect.either(onStoreIfShared(r, (s) => s.limiter.adjust(r.resolved.key, limit, delta, opId))))
    }, { discard: true })
  }
  const onStoreIfShared = (
    r: Reservation,
    f: (s: SharedState.Service) => Effect.Effect<void, LLMError.SharedStateUnavailableError>
  ) =>
    f(r.store).pipe(
      Effect.tapError((error) =>
        Effect.zipRight(
          Metric.increment(Metric.tagged(fallbacks, "operation", "adjust")),
          Effect.logWarning(`rate limit: shared state unavailable (${error.message}); a token correction is dropped`)
        )
      )
    )

  /** What the provider's rate-limit headers say is left tightens the configured limits of the call. */
  const observe = (r: Reservation, headers: Readonly<Record<string, string>> | undefined): Effect.Effect<void> =>
    headers === undefined ?
      Effect.void :
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.forEach(parseHeaders(headers, new Date(now)), (o) => {
          const max = r.resolved.limits[o.limit]
          if (max === undefined) return Effect.void
          const limit = { name: o.limit, max, period: r.resolved.period }
          return Effect.asVoid(
            onStore(
              stores,
              "observe",
              (s) => s.limiter.observe(r.resolved.key, limit, o.remaining, o.reset, `${r.id}:observe:${o.limit}`)
            )
          )
        }, { discard: true }))

  /** A provider 429 with a wait: every caller on the store waits; its reserved tokens are refunded. */
  const onFailure = (r: Reservation, error: LLMError.LLMError): Effect.Effect<void> => {
    if (error._tag !== "RateLimitError" || error.status !== 429) return Effect.void
    return Effect.zipRight(
      observe(r, error.rateLimits),
      Effect.zipRight(
        Option.match(error.retryAfter, {
          onNone: () => Effect.void,
          onSome: (wait) =>
            Effect.asVoid(
              onStore(stores, "cooldown", (s) => s.limiter.cooldown(r.resolved.key, wait, `${r.id}:cooldown`))
            )
        }),
        settle(r, "refund")
      )
    )
  }

  const finishUsage = (finish: Response.Finish | Response.LLMResponse): Usage.Tokens | undefined =>
    finish.usageUnknown === true ? undefined : finish.usage

  return {
    ...llm,
    complete: (request) => {
      const resolved = resolve(request)
      if (resolved === undefined) return llm.complete(request)
      return Effect.flatMap(admit(request, resolved), (r) =>
        llm.complete(request).pipe(
          Effect.tap((response) => {
            const usage = finishUsage(response)
            return Effect.zipRight(
              usage === undefined ? Effect.void : settle(r, usage),
              observe(r, response.rateLimits)
            )
          }),
          Effect.tapError((error) => onFailure(r, error))
        ))
    },
    stream: (request) => {
      const resolved = resolve(request)
      if (resolved === undefined) return llm.stream(request)
      return Stream.unwrap(Effect.map(admit(request, resolved), (r) =>
        llm.stream(request).pipe(
          Stream.tap((event) => {
            if (event._tag !== "Finish") return Effect.void
            const usage = finishUsage(event)
            return Effect.zipRight(usage === undefined ? Effect.void : settle(r, usage), observe(r, event.rateLimits))
          }),
          Stream.tapError((error) => onFailure(r, error))
        )))
    }
  }
}

/**
 * A limiter made once and applied to any number of `LLM`s: its local fallback state is shared by
 * all of them (see {@link withRateLimit}).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LLM, RateLimit } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const limit = yield* RateLimit.make({ limits: { openai: { rpm: 60 } } })
 *   const llm = limit(yield* LLM.LLM)
 *   return llm.providerId
 * })
 * ```
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<(llm: LLM.Service) => LLM.Service> =>
  Effect.map(makeStores(options), (stores) => (llm: LLM.Service) => protect(llm, options, stores))

/**
 * An `LLM` behind rate limits (see the module's notes). The limits live in the `SharedState` in
 * context when there is one (shared by every worker on it), else in this process.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LLM, Message, RateLimit } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const llm = yield* RateLimit.withRateLimit(yield* LLM.LLM, { limits: { openai: { rpm: 60 } } })
 *   return yield* llm.complete({ messages: [Message.user("Hi")] })
 * })
 * ```
 *
 * @since 0.1.0
 * @category Combinators
 */
export const withRateLimit: {
  (options: Options): (llm: LLM.Service) => Effect.Effect<LLM.Service>
  (llm: LLM.Service, options: Options): Effect.Effect<LLM.Service>
} = dual(
  (args) => LLM.isLLM(args[0]),
  (llm: LLM.Service, options: Options): Effect.Effect<LLM.Service> =>
    Effect.map(makeStores(options), (stores) => protect(llm, options, stores))
)

/**
 * Puts the `LLM` in context behind rate limits ({@link withRateLimit}).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { RateLimit } from "@orchestify/providers"
 * import { MockLLM } from "@orchestify/providers/testing"
 *
 * const Limited = Layer.provide(RateLimit.layer({ limits: { mock: { rpm: 60 } } }), MockLLM.layer([]))
 * ```
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<LLM.LLM, never, LLM.LLM> =>
  Layer.effect(LLM.LLM, Effect.flatMap(LLM.LLM, (llm) => withRateLimit(llm, options)))
