/**
 * Spend limits in USD and tokens, per provider, per scope (an agent, a tenant, a job: any string
 * key) and in total, over the whole life of the budget or a rolling window; alerts when a share of
 * a limit is reached; and a guard that refuses a call with `BudgetExceededError` before any request
 * once a limit is reached.
 *
 * **The overshoot bound.** A call is refused when, as it starts, a limit that applies to it is
 * already reached; its cost is known only when it ends. So calls that started before the limit was
 * reached may still finish and add their cost: the spend never exceeds a limit by more than the cost
 * of the calls in flight when it was crossed (the call that crossed it included). With one call at a
 * time that is the cost of one call. Tokens count `inputTokens + outputTokens`; a call on a model with
 * no known price adds its tokens but no USD (the provider warns about it).
 *
 * @example
 * ```ts
 * import { Effect, Layer, Stream } from "effect"
 * import { Budget, LLM, Message, OpenAI } from "@orchestify/providers"
 *
 * const live = Budget.layer({
 *   total: { usd: 20, window: "1 day" },
 *   scopes: { "*": { usd: 2, window: "1 hour" } },
 *   scope: "planner"
 * }).pipe(Layer.provide(OpenAI.layerConfig()))
 *
 * const program = Effect.gen(function*() {
 *   const budget = yield* Budget.Budget
 *   const alerts = yield* budget.subscribe
 *   yield* Effect.forkScoped(Stream.runForEach(Stream.fromQueue(alerts), (alert) => Effect.log(alert.message)))
 *   return yield* LLM.complete({ messages: [Message.user("Plan my week")] })
 * }).pipe(Effect.scoped, Effect.provide(live))
 * ```
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as LLM from "./LLM.js"
import * as LLMError from "./LLMError.js"
import type * as Response from "./Response.js"
import type * as Usage from "./Usage.js"

// -----------------------------------------------------------------------------
// Models
// -----------------------------------------------------------------------------

/**
 * One limit: calls are refused once the spend reaches `usd` or `tokens` (either, when both are
 * set). Without `window` the spend is counted over the budget's whole life; with it, only the spend
 * of the last `window` counts (a rolling window, on Effect's `Clock`).
 *
 * @since 0.1.0
 * @category Models
 */
export interface Limit {
  readonly usd?: number | undefined
  /** Input plus output tokens. */
  readonly tokens?: number | undefined
  readonly window?: Duration.DurationInput | undefined
}

/**
 * Options of {@link make}. In `providers` (keyed by `providerId`) and `scopes`, the key `"*"` gives
 * the limit of every provider or scope not named, each counted on its own.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  readonly total?: Limit | undefined
  readonly providers?: Readonly<Record<string, Limit>> | undefined
  readonly scopes?: Readonly<Record<string, Limit>> | undefined
  /** Shares of each limit at which an alert is published, once each. Default `[0.5, 0.8, 1]`. */
  readonly thresholds?: ReadonlyArray<number> | undefined
}

/**
 * What a spend is counted against.
 *
 * @since 0.1.0
 * @category Models
 */
export type Target =
  | { readonly _tag: "Total" }
  | { readonly _tag: "Provider"; readonly id: string }
  | { readonly _tag: "Scope"; readonly id: string }

/**
 * The targets.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const Target: {
  readonly total: Target
  readonly provider: (id: string) => Target
  readonly scope: (id: string) => Target
} = {
  total: { _tag: "Total" },
  provider: (id) => ({ _tag: "Provider", id }),
  scope: (id) => ({ _tag: "Scope", id })
}

/**
 * Money and tokens spent.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Spend {
  readonly usd: number
  readonly tokens: number
}

/**
 * One call as the budget sees it: the provider it goes to and, optionally, its scope.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Call {
  readonly provider: string
  readonly scope?: string | undefined
}

/**
 * A share of a limit was reached. Published once per threshold, target and metric; with a rolling
 * window, published again if the spend falls back below the threshold and then reaches it again.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Alert {
  readonly target: Target
  readonly metric: "usd" | "tokens"
  /** The share reached, e.g. `0.8`. */
  readonly threshold: number
  readonly limit: number
  readonly spent: number
  /** The rolling window of the limit, if it has one. */
  readonly window: Option.Option<Duration.Duration>
  readonly message: string
}

/**
 * A budget.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /** Fails with `BudgetExceededError` if a limit that applies to the call is reached. */
  readonly check: (call: Call) => Effect.Effect<void, LLMError.BudgetExceededError>
  /** Adds what a call spent to every target it counts against, and publishes the alerts it caused. */
  readonly record: (call: Call, spend: Spend) => Effect.Effect<void>
  /** What a target has spent (within its limit's window, if it has one). */
  readonly spent: (target: Target) => Effect.Effect<Spend>
  /** Where alerts are published. */
  readonly alerts: PubSub.PubSub<Alert>
  /** A subscription to the alerts, for as long as the scope is open. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Alert>, never, Scope.Scope>
  /** Forgets every spend and every alert already published. */
  readonly reset: Effect.Effect<void>
}

/**
 * The `Budget` service tag.
 *
 * @since 0.1.0
 * @category Tags
 */
export class Budget extends Context.Tag("@orchestify/providers/Budget")<Budget, Service>() {}

// -----------------------------------------------------------------------------
// Accounts
// -----------------------------------------------------------------------------

interface ResolvedLimit {
  readonly usd: number | undefined
  readonly tokens: number | undefined
  readonly window: Duration.Duration | undefined
}

interface Entry extends Spend {
  readonly at: number
}

interface Account {
  /** Lifetime spend, or the entries of the window. */
  readonly total: Spend
  readonly entries: ReadonlyArray<Entry>
  /** Thresholds already published, as `"usd:0.5"`. */
  readonly fired: ReadonlySet<string>
}

const zero: Spend = { usd: 0, tokens: 0 }

const emptyAccount: Account = { total: zero, entries: [], fired: new Set() }

const keyOf = (target: Target): string => target._tag === "Total" ? "total" : `${target._tag}:${target.id}`

const describeTarget = (target: Target): string =>
  target._tag === "Total" ? "the total budget" : `${target._tag === "Provider" ? "provider" : "scope"} "${target.id}"`

const resolve = (limit: Limit | undefined): ResolvedLimit | undefined =>
  limit === undefined ? undefined : {
    usd: limit.usd,
    tokens: limit.tokens,
    window: limit.window === undefined ? undefined : Duration.decode(limit.window)
  }

const add = (a: Spend, b: Spend): Spend => ({ usd: a.usd + b.usd, tokens: a.tokens + b.tokens })

/** The account as of `now`: entries older than the window dropped. */
const current = (account: Account, limit: ResolvedLimit | undefined, now: number): Account => {
  if (limit?.window === undefined) return account
  const from = now - Duration.toMillis(limit.window)
  if (account.entries.every((entry) => entry.at > from)) return account
  const entries = account.entries.filter((entry) => entry.at > from)
  return { ...account, entries, total: entries.reduce<Spend>(add, zero) }
}

const formatAmount = (metric: "usd" | "tokens", amount: number): string => {
  if (metric === "tokens") return `${amount} tokens`
  return amount === 0 || amount >= 0.01 ? `$${amount.toFixed(2)}` : `$${amount.toPrecision(2)}`
}

const windowText = (limit: ResolvedLimit): string =>
  limit.window === undefined ? "" : ` (rolling ${Duration.format(limit.window)})`

const metrics = ["usd", "tokens"] as const

// -----------------------------------------------------------------------------
// Constructors
// -----------------------------------------------------------------------------

/**
 * Makes a budget. Its spend lives in a `Ref`; its alerts go to an unbounded `PubSub` and to the log
 * (`Effect.logWarning`).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<Service> =>
  Effect.gen(function*() {
    const thresholds = [...(options.thresholds ?? [0.5, 0.8, 1])].sort((a, b) => a - b)
    const total = resolve(options.total)
    const providers = new Map(Object.entries(options.providers ?? {}).map(([id, limit]) => [id, resolve(limit)]))
    const scopes = new Map(Object.entries(options.scopes ?? {}).map(([id, limit]) => [id, resolve(limit)]))
    const accounts = yield* Ref.make<ReadonlyMap<string, Account>>(new Map())
    const alerts = yield* PubSub.unbounded<Alert>()

    const limitOf = (target: Target): ResolvedLimit | undefined => {
      switch (target._tag) {
        case "Total":
          return total
        case "Provider":
          return providers.has(target.id) ? providers.get(target.id) : providers.get("*")
        case "Scope":
          return scopes.has(target.id) ? scopes.get(target.id) : scopes.get("*")
      }
    }

    const targetsOf = (call: Call): ReadonlyArray<Target> =>
      call.scope === undefined
        ? [Target.total, Target.provider(call.provider)]
        : [Target.total, Target.provider(call.provider), Target.scope(call.scope)]

    const spentNow = (target: Target, now: number): Effect.Effect<Spend> =>
      Effect.map(
        Ref.get(accounts),
        (all) => current(all.get(keyOf(target)) ?? emptyAccount, limitOf(target), now).total
      )

    const exceeded = (target: Target, limit: ResolvedLimit, spend: Spend, provider: string) => {
      for (const metric of metrics) {
        const max = limit[metric]
        if (max === undefined || spend[metric] < max) continue
        return Option.some(
          new LLMError.BudgetExceededError({
            provider,
            limit: max,
            spent: spend[metric],
            message: `budget: ${describeTarget(target)} has spent ${formatAmount(metric, spend[metric])} of its ${
              formatAmount(metric, max)
            } limit${windowText(limit)}; the call was refused before any request`
          })
        )
      }
      return Option.none()
    }

    const check = (call: Call): Effect.Effect<void, LLMError.BudgetExceededError> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.forEach(targetsOf(call), (target) => {
          const limit = limitOf(target)
          if (limit === undefined) return Effect.void
          return Effect.flatMap(spentNow(target, now), (spend) =>
            Option.match(exceeded(target, limit, spend, call.provider), {
              onNone: () => Effect.void,
              onSome: Effect.fail
            }))
        }, { discard: true }))

    const alertOf = (
      target: Target,
      limit: ResolvedLimit,
      metric: "usd" | "tokens",
      threshold: number,
      max: number,
      spent: number
    ): Alert => ({
      target,
      metric,
      threshold,
      limit: max,
      spent,
      window: Option.fromNullable(limit.window),
      message: `budget: ${describeTarget(target)} reached ${Math.round(threshold * 100)}% of its ${
        formatAmount(metric, max)
      } limit${windowText(limit)}: ${formatAmount(metric, spent)} spent`
    })

    /** Adds the spend to one account; returns the account and the alerts it caused. */
    const addTo = (
      account: Account,
      target: Target,
      spend: Spend,
      now: number
    ): readonly [Account, ReadonlyArray<Alert>] => {
      const limit = limitOf(target)
      const before = current(account, limit, now)
      const after: Account = limit?.window === undefined
        ? { ...before, total: add(before.total, spend) }
        : { ...before, total: add(before.total, spend), entries: [...before.entries, { ...spend, at: now }] }
      if (limit === undefined) return [after, []]
      const fired = new Set(before.fired)
      const raised: Array<Alert> = []
      for (const metric of metrics) {
        const max = limit[metric]
        if (max === undefined) continue
        for (const threshold of thresholds) {
          const key = `${metric}:${threshold}`
          const level = threshold * max
          // Re-armed once the (windowed) spend has fallen back below the threshold.
          if (before.total[metric] < level) fired.delete(key)
          if (after.total[metric] >= level && !fired.has(key)) {
            fired.add(key)
            raised.push(alertOf(target, limit, metric, threshold, max, after.total[metric]))
          }
        }
      }
      return [{ ...after, fired }, raised]
    }

    const record = (call: Call, spend: Spend): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.modify(accounts, (all): readonly [ReadonlyArray<Alert>, ReadonlyMap<string, Account>] => {
          const next = new Map(all)
          const raised: Array<Alert> = []
          for (const target of targetsOf(call)) {
            const key = keyOf(target)
            const [account, alerts] = addTo(all.get(key) ?? emptyAccount, target, spend, now)
            next.set(key, account)
            raised.push(...alerts)
          }
          return [raised, next]
        })).pipe(
          Effect.flatMap((raised) =>
            Effect.forEach(raised, (alert) =>
              Effect.zipRight(
                Effect.logWarning(alert.message).pipe(Effect.annotateLogs({
                  budget: keyOf(alert.target),
                  metric: alert.metric,
                  threshold: alert.threshold
                })),
                PubSub.publish(alerts, alert)
              ), { discard: true })
          )
        )

    return {
      check,
      record,
      spent: (target) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          spentNow(target, now)),
      alerts,
      subscribe: PubSub.subscribe(alerts),
      reset: Ref.set(accounts, new Map())
    } satisfies Service
  })

// -----------------------------------------------------------------------------
// Guard
// -----------------------------------------------------------------------------

/**
 * Options of {@link guard}.
 *
 * @since 0.1.0
 * @category Models
 */
export interface GuardOptions {
  /** The scope the calls count against (an agent id, say), besides the provider and the total. */
  readonly scope?: string | undefined
}

const spendOf = (usage: Usage.Tokens, costUsd: number | undefined): Spend => ({
  usd: costUsd ?? 0,
  tokens: usage.inputTokens + usage.outputTokens
})

/**
 * An `LLM` whose calls count against the budget: a call fails with `BudgetExceededError` before any
 * request when a limit of the total, of the wrapped provider (its `providerId`) or of the scope is
 * reached; otherwise it goes through and its spend (the response's `usage` and `costUsd`, or the
 * stream's `Finish`) is recorded when it ends. A call that fails records nothing here (the provider
 * still counts it in its own usage); nor does a stream that breaks before its `Finish`.
 *
 * To budget each provider of a fallback chain, guard each provider and then chain them (with a
 * `when` that moves on after `BudgetExceededError`, which is not retryable).
 *
 * @since 0.1.0
 * @category Combinators
 */
export const guard: {
  (budget: Service, options?: GuardOptions): (llm: LLM.Service) => LLM.Service
  (llm: LLM.Service, budget: Service, options?: GuardOptions): LLM.Service
} = dual(
  (args) => LLM.isLLM(args[0]),
  (llm: LLM.Service, budget: Service, options?: GuardOptions): LLM.Service => {
    const call: Call = { provider: llm.providerId, scope: options?.scope }
    const recordFinish = (chunk: Chunk.Chunk<Response.StreamEvent>): Effect.Effect<void> => {
      const finish = Chunk.findLast(chunk, (event): event is Response.Finish => event._tag === "Finish")
      return Option.isNone(finish)
        ? Effect.void
        : budget.record(call, spendOf(finish.value.usage, finish.value.costUsd))
    }
    return {
      ...llm,
      complete: (request) =>
        Effect.zipRight(
          budget.check(call),
          Effect.tap(
            llm.complete(request),
            (response) => budget.record(call, spendOf(response.usage, response.costUsd))
          )
        ),
      stream: (request) =>
        Stream.unwrap(Effect.as(
          budget.check(call),
          Stream.mapChunksEffect(llm.stream(request), (chunk) => Effect.as(recordFinish(chunk), chunk))
        ))
    }
  }
)

/**
 * Replaces the `LLM` in context with one guarded by a new budget, and provides that budget as
 * `Budget` (for its alerts and spend).
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options & GuardOptions): Layer.Layer<LLM.LLM | Budget, never, LLM.LLM> =>
  Layer.effectContext(Effect.gen(function*() {
    const budget = yield* make(options)
    const llm = yield* LLM.LLM
    return Context.make(Budget, budget).pipe(Context.add(LLM.LLM, guard(llm, budget, options)))
  }))

/**
 * Replaces the `LLM` in context with one guarded by the `Budget` in context: one budget shared by
 * several providers (provide `Budget` with `Layer.effect(Budget.Budget, Budget.make(options))`).
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerGuard = (options?: GuardOptions): Layer.Layer<LLM.LLM, never, LLM.LLM | Budget> =>
  Layer.effect(
    LLM.LLM,
    Effect.gen(function*() {
      const budget = yield* Budget
      const llm = yield* LLM.LLM
      return guard(llm, budget, options)
    })
  )
