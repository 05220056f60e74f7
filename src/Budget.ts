/**
 * Spend limits in USD and tokens, per provider, per scope (an agent, a tenant, a job: any string
 * key) and in total, over the whole life of the budget or a rolling window; alerts when a share of
 * a limit is spent (or committed: spent plus reserved); and a guard that reserves each call's
 * forecast before any request and settles it to the actual cost after (docs/cost-control.md).
 *
 * **The overshoot promise.** A call is admitted only if its forecast (`maxUsd`) fits on every limit
 * it falls under, counting what the calls in flight reserved: `spent + reserved + maxUsd <= limit`.
 * So a USD budget is never exceeded by more than the in-flight calls' excess over their forecast,
 * which is zero when forecasts are upper bounds (and at most `maxUsd - maxReserveUsd` per call in
 * flight when `maxReserveUsd` caps the reservations). Tokens count `inputTokens + outputTokens`.
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
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as CallObserver from "./internal/budget/observer.js"
import * as RedisStore from "./internal/budget/redis.js"
import * as BudgetScope from "./internal/budget/scope.js"
import * as Store from "./internal/budget/store.js"
import * as LLM from "./LLM.js"
import * as LLMError from "./LLMError.js"
import type * as Response from "./Response.js"
import * as SharedState from "./SharedState.js"
import type * as Tokens from "./Tokens.js"
import type * as Usage from "./Usage.js"

// -----------------------------------------------------------------------------
// Models
// -----------------------------------------------------------------------------

/**
 * One limit. A call is admitted when, on every limit it falls under,
 * `spent + reserved + reservation <= limit` (for `usd` and for `tokens`, when set); a limit already
 * reached refuses every call. Without `window` the spend is counted over the budget's whole life;
 * with it, only the spend of the last `window` counts (a rolling window, on Effect's `Clock`).
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
  /** Shares of each limit at which an alert is published, once each, on the spend. Default `[0.5, 0.8, 1]`. */
  readonly thresholds?: ReadonlyArray<number> | undefined
  /**
   * Shares of each limit at which an alert is published on the spend plus the reservations of the
   * calls in flight (`basis: "committed"`): an early warning. Default none.
   */
  readonly committedThresholds?: ReadonlyArray<number> | undefined
  /**
   * A call on a model with no known price has no USD forecast: `"refuse"` (the default) refuses
   * it when a USD limit applies to it; `"allow"` lets it through, reserving and counting its
   * tokens but no USD.
   */
  readonly unpriced?: "refuse" | "allow" | undefined
  /**
   * A call whose usage is unknown (the provider reported none before it broke): `"reservation"`
   * (the default) settles it to its reservation; `"zero"` to nothing.
   */
  readonly unmetered?: "reservation" | "zero" | undefined
  /**
   * The most USD one call reserves, for callers with a huge `maxTokens`: a call whose forecast is
   * higher reserves this much, and may then spend up to its forecast, so each call in flight can
   * exceed a limit by at most `forecast.maxUsd - maxReserveUsd` (see docs/cost-control.md).
   */
  readonly maxReserveUsd?: number | undefined
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
 * A target as of now: what it spent (within its window) and what the calls in flight reserved.
 *
 * @since 0.1.0
 * @category Models
 */
export interface State {
  readonly spent: Spend
  readonly reserved: Spend
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
 * What a call asks to reserve: `usd` is `undefined` for a model with no known price (see
 * {@link Options.unpriced}). {@link guard} makes it from the provider's `forecast`:
 * `maxUsd`, and `inputTokens + maxOutputTokens`.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Estimate {
  readonly usd: number | undefined
  readonly tokens: number
}

/**
 * A reservation held by a call in flight, from {@link Service.reserve}. `settle` replaces it with
 * what the call spent (`undefined`: unknown, see {@link Options.unmetered}); only the first
 * settle counts.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Reservation {
  /** What was reserved on each target (`usd` capped by `maxReserveUsd`). */
  readonly reserved: Spend
  /** The budget's rule for a call whose usage is unknown (see {@link Options.unmetered}). */
  readonly unmetered: "reservation" | "zero"
  readonly settle: (actual: Spend | undefined) => Effect.Effect<void>
}

/**
 * A share of a limit was reached. Published once per threshold, target, metric and basis; with a
 * rolling window (or, for `"committed"`, once reservations settle lower), published again if the
 * amount falls back below the threshold and then reaches it again.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Alert {
  readonly target: Target
  readonly metric: "usd" | "tokens"
  /** `"spent"`: the spend reached the threshold; `"committed"`: the spend plus the reservations did. */
  readonly basis: "spent" | "committed"
  /** The share reached, e.g. `0.8`. */
  readonly threshold: number
  readonly limit: number
  readonly spent: number
  /** Reserved by the calls in flight when the alert was raised. */
  readonly reserved: number
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
  /**
   * Reserves `estimate` on every target the call falls under (total, provider, scope), all or
   * none, or fails with `BudgetExceededError` reserving nothing. Settle the reservation exactly
   * once when the call ends (use it in `Effect.acquireUseRelease`, as {@link guard} does).
   */
  readonly reserve: (
    call: Call,
    estimate: Estimate
  ) => Effect.Effect<Reservation, LLMError.BudgetExceededError | LLMError.SharedStateUnavailableError>
  /**
   * Fails with `BudgetExceededError` if a limit that applies to the call is reached (counting
   * reservations); reserves nothing.
   *
   * @deprecated Use {@link Service.reserve} (or {@link guard}), which admits a call only if its
   * forecast fits: `check` then `record` lets concurrent calls overshoot.
   */
  readonly check: (
    call: Call
  ) => Effect.Effect<void, LLMError.BudgetExceededError | LLMError.SharedStateUnavailableError>
  /** Adds a spend made without a reservation to every target the call counts against. */
  readonly record: (call: Call, spend: Spend) => Effect.Effect<void, LLMError.SharedStateUnavailableError>
  /** What a target has spent (within its limit's window, if it has one). */
  readonly spent: (target: Target) => Effect.Effect<Spend, LLMError.SharedStateUnavailableError>
  /** What a target has spent and what the calls in flight reserved on it. */
  readonly state: (target: Target) => Effect.Effect<State, LLMError.SharedStateUnavailableError>
  /** Where alerts are published. */
  readonly alerts: PubSub.PubSub<Alert>
  /** A subscription to the alerts, for as long as the scope is open. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Alert>, never, Scope.Scope>
  /**
   * Forgets every spend, every reservation and every alert already published. On a shared store
   * it also reseeds a store that lost its state (its epoch changed), so reservations resume.
   */
  readonly reset: Effect.Effect<void, LLMError.SharedStateUnavailableError>
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

interface ResolvedLimit extends Store.AccountLimit {
  readonly usd: number | undefined
  readonly window: Duration.Duration | undefined
}

const keyOf = (target: Target): string => target._tag === "Total" ? "total" : `${target._tag}:${target.id}`

const describeTarget = (target: Target): string =>
  target._tag === "Total" ? "the total budget" : `${target._tag === "Provider" ? "provider" : "scope"} "${target.id}"`

const resolve = (target: Target, limit: Limit | undefined): ResolvedLimit | undefined => {
  if (limit === undefined) return undefined
  const window = limit.window === undefined ? undefined : Duration.decode(limit.window)
  return {
    key: keyOf(target),
    usd: limit.usd,
    nanoUsd: limit.usd === undefined ? undefined : Store.toNano(limit.usd),
    tokens: limit.tokens,
    window,
    windowMillis: window === undefined ? undefined : Duration.toMillis(window)
  }
}

/** An account without a limit (counted, never refusing). */
const unlimited = (target: Target): ResolvedLimit => ({
  key: keyOf(target),
  usd: undefined,
  nanoUsd: undefined,
  tokens: undefined,
  window: undefined,
  windowMillis: undefined
})

const formatAmount = (metric: "usd" | "tokens", amount: number): string => {
  if (metric === "tokens") return `${amount} tokens`
  return amount === 0 || amount >= 0.01 ? `$${amount.toFixed(2)}` : `$${amount.toPrecision(2)}`
}

const windowText = (limit: ResolvedLimit): string =>
  limit.window === undefined ? "" : ` (rolling ${Duration.format(limit.window)})`

const metrics = ["usd", "tokens"] as const

const valueOf = (amount: Store.Amount, metric: "usd" | "tokens"): number =>
  metric === "usd" ? Store.fromNano(amount.nanoUsd) : amount.tokens

const spendOfAmount = (amount: Store.Amount): Spend => ({ usd: Store.fromNano(amount.nanoUsd), tokens: amount.tokens })

const nonNegative = (n: number): number => (Number.isFinite(n) && n > 0 ? n : 0)

let reservationIds = 0
/** Reservation ids are unique across processes (a shared store sees every worker's). */
const processId = Crypto.randomUUID()

// -----------------------------------------------------------------------------
// Constructors
// -----------------------------------------------------------------------------

/**
 * Makes a budget on the in-memory store (one process). Its alerts go to an unbounded `PubSub` and
 * to the log (`Effect.logWarning`).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<Service> =>
  Effect.flatMap(Store.makeMemory, (store) => makeWith(options, store))

/**
 * Options of {@link makeShared} and {@link layerShared}, besides the budget's own.
 *
 * @since 0.1.0
 * @category Models
 */
export interface SharedOptions {
  /**
   * When the shared store is unreachable or slow: `"fail"` (the default) refuses the call with
   * `SharedStateUnavailableError` (retryable), so no budget is ever exceeded; `"local"` runs on a
   * budget of this process alone (a log line and {@link sharedFallbacks} each time). A store that
   * lost its state (its epoch changed) refuses in both modes until reseeded with `reset`.
   */
  readonly onUnavailable?: "fail" | "local" | undefined
  /**
   * How long a reservation lives in the shared store: a worker that dies mid-call leaves its
   * reservation, which is charged in full when the lease expires. Longer than your longest call.
   * Default 10 minutes.
   */
  readonly lease?: Duration.DurationInput | undefined
}

/**
 * Counts the budget operations that ran on the local budget because the shared store was
 * unavailable (`onUnavailable: "local"`), tagged by `operation`.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const sharedFallbacks: Metric.Metric.Counter<number> = Metric.counter(
  "orchestify_budget_shared_fallbacks_total",
  { description: "budget operations run locally because the shared state was unavailable", incremental: true }
)

/**
 * Makes a budget on the `SharedState` in context: on `SharedState.layerRedis` every worker on
 * the same namespace shares its spend and reservations (each reserve and settle one atomic script
 * on the server; leases for dead workers; an idempotent settle); on `SharedState.layerMemory` it
 * is the one-process budget of {@link make}.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { Budget, SharedState } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const budget = yield* Budget.makeShared({ total: { usd: 1 } })
 *   return yield* budget.spent(Budget.Target.total)
 * })
 * // One process:
 * Effect.runPromise(Effect.provide(program, SharedState.layerMemory))
 * // Every worker on one Redis:
 * const shared = SharedState.layerRedis({ url: Redacted.make("redis://127.0.0.1:6379"), namespace: "prod" })
 * ```
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeShared = (
  options: Options & SharedOptions
): Effect.Effect<Service, never, SharedState.SharedState> =>
  Effect.gen(function*() {
    const state = yield* SharedState.SharedState
    const local = yield* Store.makeMemory
    if (state.redis === undefined) return yield* makeWith(options, local)
    const shared = yield* RedisStore.make(state.redis, { lease: options.lease })
    const store = options.onUnavailable === "local"
      ? RedisStore.withLocalFallback(
        shared,
        local,
        (operation) => Metric.increment(Metric.tagged(sharedFallbacks, "operation", operation))
      )
      : shared
    return yield* makeWith(options, store)
  })

/**
 * Provides a `Budget` on the `SharedState` in context ({@link makeShared}).
 *
 * @example
 * ```ts
 * import { Layer, Redacted } from "effect"
 * import { Budget, SharedState } from "@orchestify/providers"
 *
 * const budget = Budget.layerShared({ total: { usd: 20, window: "1 day" } }).pipe(
 *   Layer.provide(SharedState.layerRedis({ url: Redacted.make("redis://127.0.0.1:6379"), namespace: "prod" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerShared = (
  options: Options & SharedOptions
): Layer.Layer<Budget, never, SharedState.SharedState> => Layer.effect(Budget, makeShared(options))

/** A budget on a given store (the in-memory one or a shared one). */
const makeWith = (options: Options, store: Store.BudgetStore): Effect.Effect<Service> =>
  Effect.gen(function*() {
    const thresholds = {
      spent: [...(options.thresholds ?? [0.5, 0.8, 1])].sort((a, b) => a - b),
      committed: [...(options.committedThresholds ?? [])].sort((a, b) => a - b)
    }
    const allowUnpriced = options.unpriced === "allow"
    const unmeteredZero = options.unmetered === "zero"
    const maxReserveUsd = options.maxReserveUsd
    const total = resolve(Target.total, options.total)
    const providerLimits = options.providers ?? {}
    const scopeLimits = options.scopes ?? {}
    const alerts = yield* PubSub.unbounded<Alert>()
    /** Thresholds already published, per account. */
    let fired = new Map<string, Array<boolean>>()

    // The limits of each provider and scope, resolved once.
    const resolved = new Map<string, ResolvedLimit>()
    const limitOf = (target: Target): ResolvedLimit => {
      const key = keyOf(target)
      const known = resolved.get(key)
      if (known !== undefined) return known
      let limit: ResolvedLimit | undefined
      switch (target._tag) {
        case "Total":
          limit = total
          break
        case "Provider":
          limit = resolve(
            target,
            Object.hasOwn(providerLimits, target.id) ? providerLimits[target.id] : providerLimits["*"]
          )
          break
        case "Scope":
          limit = resolve(target, Object.hasOwn(scopeLimits, target.id) ? scopeLimits[target.id] : scopeLimits["*"])
          break
      }
      const result = limit ?? unlimited(target)
      resolved.set(key, result)
      return result
    }

    interface Accounts {
      readonly targets: ReadonlyArray<Target>
      readonly limits: ReadonlyArray<ResolvedLimit>
      readonly usdLimited: boolean
    }
    const accountsByCall = new Map<string, Accounts>()
    const accountsOf = (call: Call): Accounts => {
      const key = call.scope === undefined ? call.provider : `${call.provider}\u0000${call.scope}`
      const known = accountsByCall.get(key)
      if (known !== undefined) return known
      const targets = call.scope === undefined
        ? [Target.total, Target.provider(call.provider)]
        : [Target.total, Target.provider(call.provider), Target.scope(call.scope)]
      const limits = targets.map(limitOf)
      const accounts = { targets, limits, usdLimited: limits.some((limit) => limit.usd !== undefined) }
      accountsByCall.set(key, accounts)
      return accounts
    }

    const alertOf = (
      target: Target,
      limit: ResolvedLimit,
      metric: "usd" | "tokens",
      basis: "spent" | "committed",
      threshold: number,
      max: number,
      state: Store.AccountState
    ): Alert => {
      const spent = valueOf(state.spent, metric)
      const reserved = valueOf(state.reserved, metric)
      const amount = basis === "spent"
        ? `${formatAmount(metric, spent)} spent`
        : `${formatAmount(metric, spent)} spent + ${formatAmount(metric, reserved)} reserved`
      return {
        target,
        metric,
        basis,
        threshold,
        limit: max,
        spent,
        reserved,
        window: Option.fromNullable(limit.window),
        message: `budget: ${describeTarget(target)} ${basis === "committed" ? "has committed" : "reached"} ${
          Math.round(threshold * 100)
        }% of its ${formatAmount(metric, max)} limit${windowText(limit)}: ${amount}`
      }
    }

    /** The alerts an account's new state raises (and the thresholds it re-arms). */
    const spentLevels = thresholds.spent.length
    const levelsPerMetric = spentLevels + thresholds.committed.length
    /** The alerts an account's new state raises (and the thresholds it re-arms). */
    const alertsOf = (target: Target, state: Store.AccountState, raised: Array<Alert>): void => {
      const limit = limitOf(target)
      for (let m = 0; m < metrics.length; m++) {
        const metric = metrics[m]!
        const max = limit[metric]
        if (max === undefined) continue
        const spent = valueOf(state.spent, metric)
        const committed = spent + valueOf(state.reserved, metric)
        // Which thresholds of this account have fired: one flag per metric, basis and threshold.
        let flags = fired.get(limit.key)
        for (let i = 0; i < levelsPerMetric; i++) {
          const basis = i < spentLevels ? "spent" : "committed"
          const threshold = i < spentLevels ? thresholds.spent[i]! : thresholds.committed[i - spentLevels]!
          const at = m * levelsPerMetric + i
          const reached = (basis === "spent" ? spent : committed) >= threshold * max - 1e-12
          if (!reached) {
            if (flags !== undefined) flags[at] = false
          } else if (flags === undefined || !flags[at]) {
            if (flags === undefined) {
              flags = new Array<boolean>(metrics.length * levelsPerMetric).fill(false)
              fired.set(limit.key, flags)
            }
            flags[at] = true
            raised.push(alertOf(target, limit, metric, basis, threshold, max, state))
          }
        }
      }
    }

    const publish = (raised: ReadonlyArray<Alert>): Effect.Effect<void> =>
      raised.length === 0 ? Effect.void : Effect.forEach(raised, (alert) =>
        Effect.zipRight(
          Effect.logWarning(alert.message).pipe(Effect.annotateLogs({
            budget: keyOf(alert.target),
            metric: alert.metric,
            basis: alert.basis,
            threshold: alert.threshold
          })),
          PubSub.publish(alerts, alert)
        ), { discard: true })

    const raise = (accounts: Accounts, states: ReadonlyArray<Store.AccountState>): Effect.Effect<void> => {
      const raised: Array<Alert> = []
      for (let i = 0; i < states.length; i++) alertsOf(accounts.targets[i]!, states[i]!, raised)
      return publish(raised)
    }

    const refusal = (
      call: Call,
      target: Target,
      limit: ResolvedLimit,
      metric: "usd" | "tokens",
      state: Store.AccountState,
      estimate: number
    ): LLMError.BudgetExceededError => {
      const max = limit[metric]!
      const spent = valueOf(state.spent, metric)
      const reserved = valueOf(state.reserved, metric)
      const inFlight = reserved > 0 ? ` (+ ${formatAmount(metric, reserved)} reserved by calls in flight)` : ""
      const reason = spent + reserved >= max
        ? `has spent ${formatAmount(metric, spent)}${inFlight} of its ${formatAmount(metric, max)} limit${
          windowText(limit)
        }`
        : `has spent ${formatAmount(metric, spent)}${inFlight} of its ${formatAmount(metric, max)} limit${
          windowText(limit)
        }, and the call's forecast of ${formatAmount(metric, estimate)} does not fit`
      return new LLMError.BudgetExceededError({
        provider: call.provider,
        limit: max,
        spent,
        message: `budget: ${describeTarget(target)} ${reason}; the call was refused before any request`
      })
    }

    const reserve = (
      call: Call,
      estimate: Estimate
    ): Effect.Effect<Reservation, LLMError.BudgetExceededError | LLMError.SharedStateUnavailableError> =>
      Effect.suspend(() => {
        const accounts = accountsOf(call)
        if (estimate.usd === undefined && accounts.usdLimited && !allowUnpriced) {
          const index = accounts.limits.findIndex((limit) => limit.usd !== undefined)
          const target = accounts.targets[index]!
          return Effect.fail(
            new LLMError.BudgetExceededError({
              provider: call.provider,
              limit: accounts.limits[index]!.usd,
              message:
                `budget: the call's model has no known price, so ${
                  describeTarget(target)
                }'s USD limit cannot admit it; the call was refused before any request ` +
                `(give the model a price with the provider's \`pricing\` option, or set \`unpriced: "allow"\`)`
            })
          )
        }
        const forecastUsd = nonNegative(estimate.usd ?? 0)
        const usd = maxReserveUsd === undefined ? forecastUsd : Math.min(forecastUsd, maxReserveUsd)
        const reserved: Store.Amount = { nanoUsd: Store.toNano(usd), tokens: Math.ceil(nonNegative(estimate.tokens)) }
        const id = `${processId}:${++reservationIds}`
        return Effect.flatMap(store.reserve({ id, accounts: accounts.limits, estimate: reserved }), (answer) => {
          if (answer._tag === "Refused") {
            const target = accounts.targets[answer.index]!
            return Effect.fail(
              refusal(
                call,
                target,
                accounts.limits[answer.index]!,
                answer.metric,
                answer.state,
                valueOf(reserved, answer.metric)
              )
            )
          }
          let settled = false
          const reservation: Reservation = {
            reserved: spendOfAmount(reserved),
            unmetered: unmeteredZero ? "zero" : "reservation",
            settle: (actual) =>
              Effect.suspend(() => {
                if (settled) return Effect.void
                settled = true
                const amount: Store.Amount = actual === undefined
                  ? (unmeteredZero ? { nanoUsd: 0, tokens: 0 } : reserved)
                  : { nanoUsd: Store.toNano(nonNegative(actual.usd)), tokens: Math.round(nonNegative(actual.tokens)) }
                return store.settle({ id, actual: amount }).pipe(
                  // A settle is idempotent: resending it after a lost reply changes nothing twice.
                  Effect.retry({ times: 2 }),
                  Effect.matchEffect({
                    onFailure: (e) =>
                      Effect.logWarning(
                        `budget: settling reservation ${id} failed (${e.message}); its lease will charge the reservation`
                      ),
                    onSuccess: (result) => result._tag === "Settled" ? raise(accounts, result.accounts) : Effect.void
                  })
                )
              }).pipe(Effect.uninterruptible)
          }
          return Effect.as(raise(accounts, answer.accounts), reservation)
        })
      })

    const check = (
      call: Call
    ): Effect.Effect<void, LLMError.BudgetExceededError | LLMError.SharedStateUnavailableError> =>
      Effect.suspend(() => {
        const accounts = accountsOf(call)
        return Effect.forEach(accounts.limits, (limit, index) =>
          Effect.flatMap(store.read(limit), (state) => {
            for (const metric of metrics) {
              const max = limit[metric]
              if (max === undefined) continue
              if (valueOf(state.spent, metric) + valueOf(state.reserved, metric) >= max) {
                return Effect.fail(refusal(call, accounts.targets[index]!, limit, metric, state, 0))
              }
            }
            return Effect.void
          }), { discard: true })
      })

    const record = (call: Call, spend: Spend): Effect.Effect<void, LLMError.SharedStateUnavailableError> =>
      Effect.suspend(() => {
        const accounts = accountsOf(call)
        return Effect.flatMap(
          store.add({
            accounts: accounts.limits,
            actual: { nanoUsd: Store.toNano(nonNegative(spend.usd)), tokens: Math.round(nonNegative(spend.tokens)) }
          }),
          (states) => raise(accounts, states)
        )
      })

    const state = (target: Target): Effect.Effect<State, LLMError.SharedStateUnavailableError> =>
      Effect.map(store.read(limitOf(target)), (state) => ({
        spent: spendOfAmount(state.spent),
        reserved: spendOfAmount(state.reserved)
      }))

    return {
      reserve,
      check,
      record,
      spent: (target) => Effect.map(state(target), (state) => state.spent),
      state,
      alerts,
      subscribe: PubSub.subscribe(alerts),
      reset: Effect.zipRight(
        store.reset,
        Effect.sync(() => {
          fired = new Map()
        })
      )
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

/** What one guarded call learned of its spend: the sum of the attempts the recorder settled under it. */
class Tally implements CallObserver.CallObserver {
  attempts = 0
  refusals = 0
  usd = 0
  tokens = 0
  usdUnknown = false
  tokensUnknown = false

  readonly settled = (call: CallObserver.Settled): void => {
    this.attempts++
    if (call.refusedByStatus) return
    if (call.usage === undefined) {
      this.usdUnknown = true
      this.tokensUnknown = true
      return
    }
    this.tokens += call.usage.inputTokens + call.usage.outputTokens
    if (call.costUsd === undefined) this.usdUnknown = true
    else this.usd += call.costUsd
  }

  readonly refused = (): void => {
    this.refusals++
  }

  /**
   * The call's spend: what the attempts under it reported; an unknown part settles to the
   * reservation (`undefined` here, resolved by the budget's `unmetered` rule), unless what is known
   * is already more. `fallback` is the reply's own usage, for an `LLM` not built on `LLM.make`.
   */
  actual(reservation: Reservation, fallback: Spend | undefined, exit: Exit.Exit<unknown, unknown>): Spend | undefined {
    if (this.attempts === 0) {
      if (fallback !== undefined) return fallback
      // Refused before any request (by the pipeline, a breaker, an inner budget): it cost nothing.
      return this.refusals > 0 || refusedLocally(exit) ? zeroSpend : undefined
    }
    if (!this.usdUnknown && !this.tokensUnknown) return { usd: this.usd, tokens: this.tokens }
    if (this.usd === 0 && this.tokens === 0) return undefined
    if (reservation.unmetered === "zero") return { usd: this.usd, tokens: this.tokens }
    return {
      usd: this.usdUnknown ? Math.max(this.usd, reservation.reserved.usd) : this.usd,
      tokens: this.tokensUnknown ? Math.max(this.tokens, reservation.reserved.tokens) : this.tokens
    }
  }
}

const zeroSpend: Spend = { usd: 0, tokens: 0 }

/** Errors that mean a call was refused before any request. */
const localRefusals: ReadonlySet<string> = new Set(["BudgetExceededError", "CircuitOpenError", "InvalidRequestError"])

const refusedLocally = (exit: Exit.Exit<unknown, unknown>): boolean => {
  if (Exit.isSuccess(exit)) return false
  const failure = Cause.failureOption(exit.cause)
  return Option.isSome(failure) && Predicate.hasProperty(failure.value, "_tag") &&
    localRefusals.has(String(failure.value._tag))
}

const spendOf = (usage: Usage.Tokens, costUsd: number | undefined): Spend => ({
  usd: costUsd ?? 0,
  tokens: usage.inputTokens + usage.outputTokens
})

const estimateOf = (forecast: Tokens.Forecast): Estimate => ({
  usd: forecast.maxUsd,
  tokens: forecast.inputTokens + forecast.maxOutputTokens
})

/** Runs `effect` with `tally` told of every call the recorder settles in it. */
const observed = <A, E, R>(tally: Tally, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(
    FiberRef.get(CallObserver.currentCallObserver),
    (parent) => Effect.locally(effect, CallObserver.currentCallObserver, CallObserver.chain(parent, tally))
  )

/**
 * An `LLM` whose calls count against the budget, reserved before the call and settled after it:
 *
 * - the provider's `forecast` of the request (`maxUsd`, and `inputTokens + maxOutputTokens`
 *   tokens) is reserved on every limit the call falls under (the total, the wrapped provider's
 *   `providerId`, the scope), all or none, before any request. A call that does not fit on one of
 *   them fails with `BudgetExceededError`, reserves nothing anywhere and reaches no server; so does
 *   a call on an unpriced model under a USD limit, unless `unpriced: "allow"`.
 * - when the call ends, however it ends, its reservation is replaced, exactly once, by what it
 *   cost: the usage the provider reported, for failed, cut and interrupted calls too (Anthropic
 *   bills the prompt of a stream cut after `message_start`); a call whose usage is unknown settles
 *   to its reservation (or to nothing with `unmetered: "zero"`). A stream settles when it ends,
 *   fails, or its consumer stops early.
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
    const provider = llm.providerId
    const fixed: Call | undefined = options?.scope === undefined ? undefined : { provider, scope: options.scope }
    const unscoped: Call = { provider }
    /** The call's accounts: the guard's scope, else the scope of the calling context (a registry agent's). */
    const callOf: Effect.Effect<Call> = fixed !== undefined ? Effect.succeed(fixed) : Effect.map(
      Effect.serviceOption(BudgetScope.CurrentBudgetScope),
      (scope) => Option.isNone(scope) ? unscoped : { provider, scope: scope.value }
    )
    const reserve = (forecast: Tokens.Forecast) =>
      Effect.flatMap(callOf, (call) => budget.reserve(call, estimateOf(forecast)))
    const complete = (request: LLM.CompletionRequest): Effect.Effect<Response.LLMResponse, LLMError.LLMError> =>
      // The forecast may ask the provider (interruptible); the reservation and its release are
      // one `acquireUseRelease`, so a call that reserved settles exactly once whatever happens.
      Effect.flatMap(llm.forecast(request), (forecast) => {
        // The call's state, made when it runs (an effect may run many times).
        const tally = new Tally()
        let reply: Spend | undefined
        return Effect.acquireUseRelease(
          reserve(forecast),
          () =>
            Effect.tap(observed(tally, llm.complete(request)), (response) => {
              reply = response.usageUnknown === true ? undefined : spendOf(response.usage, response.costUsd)
            }),
          (reservation, exit) => reservation.settle(tally.actual(reservation, reply, exit))
        )
      })

    const stream = (request: LLM.CompletionRequest): Stream.Stream<Response.StreamEvent, LLMError.LLMError> =>
      // One channel (as the pipeline's own stream): lighter than Stream.suspend + unwrap + ensuringWith.
      Stream.fromChannel(Channel.suspend(() => {
        const tally = new Tally()
        let reply: Spend | undefined
        let reservation: Reservation | undefined
        // The reservation is taken and remembered in one uninterruptible step; the finalizer of the
        // whole stream (which runs after the provider stream's own, where the recorder settles a
        // cut or abandoned call) settles it: once, when the stream ends, fails, is interrupted or
        // its consumer stops early.
        type Batch = Chunk.Chunk<Response.StreamEvent>
        let parent: CallObserver.CallObserver | undefined
        let observing = false
        /** Puts the parent observer back: from the first event on, no attempt starts under this call. */
        const unobserve = Effect.suspend(() => {
          if (!observing) return Effect.void
          observing = false
          return FiberRef.set(CallObserver.currentCallObserver, parent)
        })
        /** The provider's events, as they come; the first batch puts the parent observer back. */
        const reader: Channel.Channel<Batch, Batch, LLMError.LLMError, LLMError.LLMError, unknown, unknown> = Channel
          .readWithCause({
            onInput: (chunk: Batch) => {
              if (tally.attempts === 0) {
                // An LLM not built on `LLM.make`: its `Finish` is all there is to go by.
                const finish = Chunk.findLast(chunk, (event): event is Response.Finish => event._tag === "Finish")
                if (Option.isSome(finish) && finish.value.usageUnknown !== true) {
                  reply = spendOf(finish.value.usage, finish.value.costUsd)
                }
              }
              return observing
                ? Channel.zipRight(Channel.fromEffect(unobserve), Channel.flatMap(Channel.write(chunk), () => reader))
                : Channel.flatMap(Channel.write(chunk), () => reader)
            },
            onFailure: Channel.failCause,
            onDone: () => Channel.void
          })
        const open = Effect.flatMap(
          Effect.zip(llm.forecast(request), FiberRef.get(CallObserver.currentCallObserver)),
          ([forecast, current]) =>
            Effect.uninterruptible(Effect.flatMap(reserve(forecast), (reserved) => {
              reservation = reserved
              parent = current
              observing = true
              return Effect.as(
                FiberRef.set(CallObserver.currentCallObserver, CallObserver.chain(current, tally)),
                Channel.pipeTo(Stream.toChannel(llm.stream(request)), reader)
              )
            }))
        )
        return Channel.ensuringWith(
          Channel.unwrap(open),
          (exit) =>
            reservation === undefined
              ? Effect.void
              : Effect.zipRight(unobserve, reservation.settle(tally.actual(reservation, reply, exit)))
        )
      }))

    return { ...llm, complete, stream }
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
