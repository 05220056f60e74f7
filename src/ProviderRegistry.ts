/**
 * The `ProviderRegistry` service: every provider of a config built once, inside the registry's
 * scope, and released with it; agents (a provider with request defaults); the usage of all
 * providers summed and summarised; a connectivity check.
 *
 * A provider or agent whose config asks for `retry`, `request_timeout`, `circuit_breaker` or
 * `fallbacks` is wrapped in them (`Resilience.wrap`'s order:
 * `fallback(retry(circuitBreaker(timeout(llm))))`), with one circuit breaker per provider, made in
 * the registry's scope. A fallback is the other provider with its own settings but not its own
 * fallbacks.
 *
 * `ProviderRegistry.llm(id)` and `ProviderRegistry.agent(id)` provide the `LLM` tag, so a program
 * written against `LLM` runs on any configured provider unchanged.
 *
 * @example
 * ```ts
 * import { NodeContext } from "@effect/platform-node"
 * import { Console, Effect, Layer } from "effect"
 * import { LLM, Message, ProviderRegistry } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const reply = yield* LLM.complete({ messages: [Message.user("Plan my week")] })
 *   yield* Console.log(reply.content)
 * })
 *
 * const registry = ProviderRegistry.layerFromFile("providers.yaml").pipe(Layer.provide(NodeContext.layer))
 *
 * Effect.gen(function*() {
 *   yield* program.pipe(Effect.provide(ProviderRegistry.agent("planner")))
 *   yield* program.pipe(Effect.provide(ProviderRegistry.llm("openai_main")))
 *   const summary = yield* ProviderRegistry.usageSummary
 *   yield* Console.log(summary.table)
 * }).pipe(Effect.provide(registry))
 * ```
 *
 * @since 0.1.0
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Budget from "./Budget.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import * as BudgetScope from "./internal/budget/scope.js"
import * as Pool from "./internal/pool.js"
import * as Lifetime from "./internal/registry/lifetime.js"
import * as RateLimits from "./internal/registry/rateLimits.js"
import * as Resilient from "./internal/registry/resilient.js"
import * as SharedStateWiring from "./internal/registry/sharedState.js"
import * as SharedUsage from "./internal/registry/sharedUsage.js"
import * as SummaryTable from "./internal/registry/summary.js"
import * as LLM from "./LLM.js"
import * as LLMError from "./LLMError.js"
import * as Message from "./Message.js"
import * as Anthropic from "./providers/Anthropic.js"
import * as LiteLLM from "./providers/LiteLLM.js"
import * as OpenAI from "./providers/OpenAI.js"
import * as ProvidersConfig from "./ProvidersConfig.js"
import * as Usage from "./Usage.js"

// -----------------------------------------------------------------------------
// Errors
// -----------------------------------------------------------------------------

const knownList = (what: string, known: ReadonlyArray<string>): string =>
  known.length === 0 ? `no ${what} are registered` : `known ${what}: ${known.join(", ")}`

/**
 * `get(id)` named no registered provider.
 *
 * @since 0.1.0
 * @category Errors
 */
export class UnknownProviderError extends Schema.TaggedError<UnknownProviderError>()("UnknownProviderError", {
  id: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `unknown provider "${this.id}"; ${knownList("providers", this.known)}`
  }
}

/**
 * `getForAgent(id)` named no configured agent.
 *
 * @since 0.1.0
 * @category Errors
 */
export class UnknownAgentError extends Schema.TaggedError<UnknownAgentError>()("UnknownAgentError", {
  id: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `unknown agent "${this.id}"; ${knownList("agents", this.known)}`
  }
}

/**
 * One provider that failed the connectivity check.
 *
 * @since 0.1.0
 * @category Models
 */
export const ConnectivityFailure = Schema.Struct({
  id: Schema.String,
  error: LLMError.LLMError
})

/**
 * One provider that failed the connectivity check.
 *
 * @since 0.1.0
 * @category Models
 */
export type ConnectivityFailure = Schema.Schema.Type<typeof ConnectivityFailure>

/**
 * The connectivity check that `layerFromConfig(config, { validateConnectivity: true })` runs
 * failed: every provider that failed it, each with its typed error.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ConnectivityError extends Schema.TaggedError<ConnectivityError>()("ConnectivityError", {
  failures: Schema.Array(ConnectivityFailure),
  checked: Schema.Number
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return [
      `${this.failures.length} of ${this.checked} providers failed the connectivity check:`,
      ...this.failures.map((f) => {
        // Provider errors start with the provider's id: say it once.
        const message = f.error.message.startsWith(`${f.id}: `)
          ? f.error.message.slice(f.id.length + 2)
          : f.error.message
        return `  - ${f.id}: ${f.error._tag}: ${message}`
      })
    ].join("\n")
  }
}

// -----------------------------------------------------------------------------
// Models
// -----------------------------------------------------------------------------

/**
 * A registered provider, as `list` shows it.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ProviderInfo {
  readonly id: string
  readonly type: LLM.ProviderType
  readonly defaultModel: string
}

/**
 * What {@link Service.usageTotals} gives: the totals and whether they are this process' own
 * (`"local"`) or every process' on the configured `SharedState` (`"shared"`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ProviderRegistry } from "@orchestify/providers"
 *
 * const scope = Effect.map(ProviderRegistry.usageTotals, (t: ProviderRegistry.UsageTotals) => t.scope)
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface UsageTotals {
  readonly scope: "local" | "shared"
  readonly usage: Usage.TokenUsage
  /** Why the shared totals could not be read (then `scope` is `"local"`). */
  readonly error?: string | undefined
}

/**
 * The usage of one provider.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ProviderSummary extends ProviderInfo {
  readonly usage: Usage.TokenUsage
}

/**
 * The usage of one model on one provider.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ModelSummary extends Usage.ModelUsage {
  readonly provider: string
  readonly model: string
}

/**
 * The usage of every provider: per provider, per model on each provider, the total, and all of it
 * as a readable table.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Summary {
  readonly providers: ReadonlyArray<ProviderSummary>
  readonly models: ReadonlyArray<ModelSummary>
  readonly total: Usage.TokenUsage
  readonly table: string
}

/**
 * The result of the connectivity check for one provider.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ConnectivityResult {
  readonly id: string
  readonly ok: boolean
  /** Why it failed (a `TimeoutError` when it did not answer in time). */
  readonly error?: LLMError.LLMError
  readonly latencyMs: number
}

/**
 * Options of the connectivity check.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ConnectivityOptions {
  /** How long each provider has to answer. Default 10 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * The registry.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /**
   * The provider registered under `id`, wrapped in its config's `request_timeout`,
   * `circuit_breaker`, `retry` and `fallbacks`, in `Resilience.wrap`'s order. Its `providerId` is
   * `id`; its `usage` and `resetUsage` are the provider's own (a fallback's calls count on the
   * fallback).
   */
  readonly get: (id: string) => Effect.Effect<LLM.Service, UnknownProviderError>
  /**
   * The agent's provider with the agent's `model`, `maxTokens`, `temperature` and `system` as
   * request defaults (a request's own values win), wrapped in the agent's resilience settings where
   * it has its own (each replaces its provider's). Its `providerId` and `usage` are the provider's.
   */
  readonly getForAgent: (agentId: string) => Effect.Effect<LLM.Service, UnknownAgentError>
  /** Registers (or replaces) a provider built elsewhere; the registry does not own its lifetime. */
  readonly register: (id: string, llm: LLM.Service) => Effect.Effect<void>
  /** The registered providers, in order. */
  readonly list: Effect.Effect<ReadonlyArray<ProviderInfo>>
  /** The configured agents' ids, in order. */
  readonly agents: Effect.Effect<ReadonlyArray<string>>
  /** The usage of every provider, summed (each provider once, whatever fallbacks point at it). */
  readonly totalUsage: Effect.Effect<Usage.TokenUsage>
  /**
   * The usage totals and where they come from: `"shared"` (every process on the configured
   * `SharedState`, after this process' outbox is flushed) or `"local"` (this process' providers,
   * as `totalUsage`; also when the shared store cannot be read, with `error` saying why).
   */
  readonly usageTotals: Effect.Effect<UsageTotals>
  readonly usageSummary: Effect.Effect<Summary>
  readonly resetAllUsage: Effect.Effect<void>
  /**
   * Asks every provider a 1-token question ("ping") in parallel, each within the timeout, and
   * reports every result. The pings are real calls: they count in usage.
   */
  readonly checkConnectivity: (options?: ConnectivityOptions) => Effect.Effect<ReadonlyArray<ConnectivityResult>>
  /**
   * The budget of the config's `budget` (per provider and agent) and `budgets` (total, scopes)
   * settings, when it has any: every attempt of a provider (a fallback's included) reserves its
   * forecast on the total, its provider and, for an agent's calls, the agent's scope. Subscribe
   * to its alerts, read its spend.
   */
  readonly budget: Option.Option<Budget.Service>
}

/**
 * The `ProviderRegistry` service tag.
 *
 * @since 0.1.0
 * @category Tags
 */
export class ProviderRegistry extends Context.Tag("@orchestify/providers/ProviderRegistry")<
  ProviderRegistry,
  Service
>() {}

// -----------------------------------------------------------------------------
// Factories
// -----------------------------------------------------------------------------

/**
 * Builds the `LLM` of one configured provider, in the registry's scope. A provider its factory
 * cannot build is reported as a `ProvidersConfigError`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Factory = (
  provider: ProvidersConfig.Provider
) => Effect.Effect<LLM.Service, ProvidersConfig.ProvidersConfigError, Scope.Scope>

/**
 * Factories by provider type.
 *
 * @since 0.1.0
 * @category Models
 */
export type Factories = { readonly [K in ProvidersConfig.ProviderType]?: Factory | undefined }

const problem = (provider: ProvidersConfig.Provider, field: string, message: string) =>
  new ProvidersConfig.ProvidersConfigError({
    path: "<config>",
    problems: [`providers.${provider.id}.${field}: ${message}`]
  })

const requireKey = (
  provider: ProvidersConfig.Provider
): Effect.Effect<Redacted.Redacted<string>, ProvidersConfig.ProvidersConfigError> =>
  provider.apiKey === undefined
    ? Effect.fail(problem(provider, "api_key", `is required for an ${provider.type} provider`))
    : Effect.succeed(provider.apiKey)

const commonOptions = (provider: ProvidersConfig.Provider) => ({
  providerId: provider.id,
  defaultModel: provider.defaultModel,
  maxTokens: provider.maxTokens,
  clampMaxTokens: provider.clampMaxTokens,
  baseUrl: provider.baseUrl,
  timeout: provider.timeout,
  pricing: provider.pricing,
  // Kept Redacted: each provider unwraps them only into its requests, and keeps them out of spans,
  // logs and errors.
  headers: provider.headers
})

/** Why the built-in LiteLLM factory cannot route `model`, if it cannot. */
const unroutable = (model: string, baseUrl: string | undefined): string | undefined =>
  LiteLLM.resolve(model, LiteLLM.routes, baseUrl !== undefined) !== undefined
    ? undefined
    : `"${model}" names no known LiteLLM provider prefix (${
      Object.keys(LiteLLM.routes).map((p) => `${p}/`).join(", ")
    }); set base_url to send a bare model name to any OpenAI-compatible server`

const litellm: Factory = (provider) => {
  const model = provider.defaultModel
  if (model === undefined) {
    return Effect.fail(problem(provider, "default_model", "is required for a litellm provider"))
  }
  const unknown = unroutable(model, provider.baseUrl)
  if (unknown !== undefined) return Effect.fail(problem(provider, "default_model", unknown))
  return Effect.gen(function*() {
    // The provider's own connection pool, destroyed with the registry's scope, so no keep-alive
    // socket outlives it.
    const fetch = yield* Pool.scopedFetch
    const base = yield* Effect.provide(HttpClient.HttpClient, FetchHttpClient.layer)
    const owned = HttpClient.transform(base, (effect) => Effect.provideService(effect, FetchHttpClient.Fetch, fetch))
    // The other routes' keys and base URLs come from their variables (GROQ_API_KEY, ...).
    const options = yield* LiteLLM.readEnv({
      ...commonOptions(provider),
      apiKey: provider.apiKey,
      defaultModel: model,
      apiVersion: provider.apiVersion
    })
    return yield* LiteLLM.make(options).pipe(Effect.provideService(HttpClient.HttpClient, owned))
  })
}

/**
 * The built-in factories, one per provider type: `anthropic` (`Anthropic.make`), `openai`
 * (`OpenAI.make`) and `litellm` (`LiteLLM.readEnv`, then `LiteLLM.make` over `FetchHttpClient`).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const factories: Factories = {
  anthropic: (provider) =>
    Effect.flatMap(requireKey(provider), (apiKey) => Anthropic.make({ ...commonOptions(provider), apiKey })),
  openai: (provider) =>
    Effect.flatMap(requireKey(provider), (apiKey) =>
      OpenAI.make({
        ...commonOptions(provider),
        apiKey,
        organization: provider.organization,
        project: provider.project
      })),
  litellm
}

/**
 * The registry's own checks of a provider, made before anything is built and, for a file or a
 * document, in the same round as the config's checks (so one error lists every problem): a factory
 * for its type, and a model that the built-in LiteLLM factory can route.
 */
const registryChecks =
  (table: Factories) => (provider: ProvidersConfig.ProviderOutline): ReadonlyArray<ProvidersConfig.FieldProblem> => {
    const factory = table[provider.type]
    if (factory === undefined) {
      return [{ field: "type", message: `no factory builds a provider of type ${provider.type}` }]
    }
    const unknown = factory === litellm && provider.defaultModel !== undefined
      ? unroutable(provider.defaultModel, provider.baseUrl)
      : undefined
    return unknown === undefined ? [] : [{ field: "default_model", message: unknown }]
  }

// -----------------------------------------------------------------------------
// Combinators
// -----------------------------------------------------------------------------

/**
 * Request defaults an agent applies.
 *
 * @since 0.1.0
 * @category Models
 */
export interface RequestDefaults {
  readonly model?: string | undefined
  readonly maxTokens?: number | undefined
  readonly temperature?: number | undefined
  readonly system?: string | undefined
}

/**
 * An `LLM` whose requests take `defaults` for the fields they leave unset. `providerId`, `usage`
 * and the rest stay the wrapped provider's; `defaultModel` becomes the default model.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const withDefaults: {
  (defaults: RequestDefaults): (llm: LLM.Service) => LLM.Service
  (llm: LLM.Service, defaults: RequestDefaults): LLM.Service
} = dual(
  (args) => LLM.isLLM(args[0]),
  (llm: LLM.Service, defaults: RequestDefaults): LLM.Service => {
    const apply = (request: LLM.CompletionRequest): LLM.CompletionRequest => {
      const out: { -readonly [K in keyof LLM.CompletionRequest]: LLM.CompletionRequest[K] } = { ...request }
      if (out.model === undefined && defaults.model !== undefined) out.model = defaults.model
      if (out.maxTokens === undefined && defaults.maxTokens !== undefined) out.maxTokens = defaults.maxTokens
      if (out.temperature === undefined && defaults.temperature !== undefined) out.temperature = defaults.temperature
      if (out.system === undefined && defaults.system !== undefined) out.system = defaults.system
      return out
    }
    const defaultModel = defaults.model ?? llm.defaultModel
    return {
      ...llm,
      defaultModel,
      capabilities: (model) => llm.capabilities(model ?? defaultModel),
      complete: (request) => llm.complete(apply(request)),
      stream: (request) => llm.stream(apply(request)),
      countTokens: (request, options) => llm.countTokens(apply(request), options),
      forecast: (request, options) => llm.forecast(apply(request), options)
    }
  }
)

// -----------------------------------------------------------------------------
// Constructors
// -----------------------------------------------------------------------------

interface Entry {
  readonly id: string
  /** The provider itself: what usage, summaries and the connectivity check read. */
  readonly base: LLM.Service
  /** What `get(id)` gives: the provider wrapped in its resilience settings. */
  readonly llm: LLM.Service
}

/**
 * Options of the registry's constructors and layers.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Run {@link checkConnectivity} while building, failing with a `ConnectivityError` if any provider fails it. */
  readonly validateConnectivity?: boolean | undefined
  /** The timeout of that check. Default 10 seconds. */
  readonly connectivityTimeout?: Duration.DurationInput | undefined
  /** Factories that replace or add to the built-in {@link factories}, by provider type. */
  readonly factories?: Factories | undefined
}

/**
 * What the registry is built from: a config decoded by `ProvidersConfig` (`load`, `parse`,
 * `decode`), or a {@link ProvidersConfig.Document} written in code as the YAML would be
 * (`{ providers: { claude_main: { api_key: "${ANTHROPIC_API_KEY}", default_model: ... } } }`),
 * which is decoded first with the same checks (source `<inline>`).
 *
 * @since 0.1.0
 * @category Models
 */
export type ConfigInput = ProvidersConfig.ProvidersConfig | ProvidersConfig.Document

/**
 * Builds the registry: every provider of the config, once, in the current scope (and so released
 * with it: a call still running on one of them then fails). Every provider that cannot be built is
 * reported in one `ProvidersConfigError`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (
  input: ConfigInput,
  options?: Options
): Effect.Effect<Service, ProvidersConfig.ProvidersConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const table: Factories = { ...factories, ...options?.factories }
    const checkProvider = registryChecks(table)
    const config = ProvidersConfig.isProvidersConfig(input)
      ? input
      : yield* ProvidersConfig.decode(input, "<inline>", { checkProvider })
    const providers = Object.values(config.providers)
    const closed = yield* Deferred.make<void>()

    const lifetime = Lifetime.make(closed)
    const build = (
      provider: ProvidersConfig.Provider
    ): Effect.Effect<{ readonly id: string; readonly llm: LLM.Service }, ReadonlyArray<string>, Scope.Scope> => {
      const factory = table[provider.type]
      if (factory === undefined) {
        return Effect.fail([`providers.${provider.id}.type: no factory builds a provider of type ${provider.type}`])
      }
      return factory(provider).pipe(
        Effect.map((llm) => ({
          id: provider.id,
          llm: factory === factories[provider.type]
            ? lifetime.guardBuiltIn(provider.id, llm)
            : lifetime.guardRacing(provider.id, llm)
        })),
        Effect.mapError((error) => error.problems)
      )
    }

    // A config built in code has not been through ProvidersConfig's checks.
    const fallbackProblems = (at: string, fallbacks: ReadonlyArray<string> | undefined): ReadonlyArray<string> =>
      (fallbacks ?? []).flatMap((target) =>
        Object.hasOwn(config.providers, target) ? [] : [`${at}.fallbacks: provider "${target}" is not defined`]
      )

    // Everything that can be checked before building, reported together.
    const problems: Array<string> = []
    for (const provider of providers) {
      for (const { field, message } of checkProvider(provider)) {
        problems.push(`providers.${provider.id}.${field}: ${message}`)
      }
      problems.push(...fallbackProblems(`providers.${provider.id}`, provider.fallbacks))
    }
    for (const agent of Object.values(config.agents)) {
      if (!Object.hasOwn(config.providers, agent.provider)) {
        problems.push(`agents.${agent.id}.provider: provider "${agent.provider}" is not defined`)
      }
      problems.push(...fallbackProblems(`agents.${agent.id}`, agent.fallbacks))
    }
    if (problems.length > 0) {
      return yield* new ProvidersConfig.ProvidersConfigError({ path: config.source, problems })
    }

    const built = yield* Effect.forEach(providers, (provider) => Effect.either(build(provider)), {
      concurrency: "unbounded"
    })
    const buildProblems = built.flatMap((result) => Either.isLeft(result) ? result.left : [])
    if (buildProblems.length > 0) {
      return yield* new ProvidersConfig.ProvidersConfigError({ path: config.source, problems: buildProblems })
    }

    // Each provider's resilience: one circuit breaker per provider (shared by its fallback role and
    // by its agents), the provider as a fallback (its own settings, not its own fallbacks: no chains
    // of chains), and the provider as `get` gives it.
    const bases = new Map(
      built.flatMap((result) => Either.isRight(result) ? [[result.right.id, result.right.llm]] : [])
    )
    const breakers = new Map<string, CircuitBreaker.CircuitBreaker>()
    for (const provider of providers) {
      if (Resilient.isOn(provider.circuitBreaker)) {
        breakers.set(
          provider.id,
          yield* CircuitBreaker.make({ ...provider.circuitBreaker, provider: provider.id })
        )
      }
    }
    // The budget: each provider's calls (every attempt) reserve before they are sent.
    const budgetOptions = budgetOptionsOf(config)
    const budget = budgetOptions === undefined ? undefined : yield* Budget.make(budgetOptions)
    // Rate limits (issue 14): each attempt of a provider is admitted by its `rate_limits`.
    // One shared state (the config's Redis, else one in context) for rate limits and usage.
    const shared = yield* SharedStateWiring.connect(config)
    const rateLimits = yield* RateLimits.make(config, shared)
    // Shared usage (issue 14): each provider's settled replies go to the shared store, if any.
    const sharedUsage = Option.map(shared, (s) => s.usage)
    const guarded = new Map(
      Array.from(bases, ([id, base]) => {
        const recorded = Option.isSome(sharedUsage) ? SharedUsage.record(base, sharedUsage.value) : base
        const llm = rateLimits.provider(id, recorded)
        return [id, budget === undefined ? llm : Budget.guard(llm, budget)] as const
      })
    )
    const asFallback = new Map<string, LLM.Service>()
    for (const provider of providers) {
      const base = guarded.get(provider.id)!
      asFallback.set(
        provider.id,
        Resilient.resilient(base, { ...provider, fallbacks: undefined }, breakers.get(provider.id), [], closed)
      )
    }
    const targets = (fallbacks: ReadonlyArray<string> | undefined) => (fallbacks ?? []).map((id) => asFallback.get(id)!)

    const initial = new Map<string, Entry>()
    for (const provider of providers) {
      const base = bases.get(provider.id)!
      const service = Resilient.resilient(
        guarded.get(provider.id)!,
        provider,
        breakers.get(provider.id),
        targets(provider.fallbacks),
        closed
      )
      initial.set(provider.id, { id: provider.id, base, llm: service })
    }
    // An agent with settings of its own is built now, on its provider as configured; one without
    // uses its provider as `get` gives it.
    const agentServices = new Map<string, LLM.Service>()
    for (const agent of Object.values(config.agents)) {
      if (!Resilient.hasOwnSettings(agent)) continue
      const provider = config.providers[agent.provider]!
      const base = guarded.get(provider.id)!
      const settings = Resilient.agentSettings(provider, agent)
      const breaker = agent.circuitBreaker === undefined
        ? breakers.get(provider.id)
        : Resilient.isOn(agent.circuitBreaker)
        ? yield* CircuitBreaker.make({ ...agent.circuitBreaker, provider: provider.id })
        : undefined
      const service = Resilient.resilient(base, settings, breaker, targets(settings.fallbacks), closed)
      agentServices.set(agent.id, service)
    }

    const entries = yield* Ref.make<ReadonlyMap<string, Entry>>(initial)
    const agents = yield* Ref.make<ReadonlyMap<string, ProvidersConfig.Agent>>(
      new Map(Object.values(config.agents).map((agent) => [agent.id, agent]))
    )
    // Added last, so it runs first: calls still running fail, and nothing is reachable any more.
    yield* Effect.addFinalizer(() =>
      Effect.all([Deferred.succeed(closed, undefined), Ref.set(entries, new Map()), Ref.set(agents, new Map())])
    )

    const all = Effect.map(Ref.get(entries), (map) => Array.from(map.values()))

    const get = (id: string): Effect.Effect<LLM.Service, UnknownProviderError> =>
      Effect.flatMap(Ref.get(entries), (map) => {
        const entry = map.get(id)
        return entry === undefined
          ? Effect.fail(new UnknownProviderError({ id, known: Array.from(map.keys()) }))
          : Effect.succeed(entry.llm)
      })

    const getForAgent = (agentId: string): Effect.Effect<LLM.Service, UnknownAgentError> =>
      Effect.flatMap(Ref.get(agents), (map) => {
        const agent = map.get(agentId)
        if (agent === undefined) {
          return Effect.fail(new UnknownAgentError({ id: agentId, known: Array.from(map.keys()) }))
        }
        const own = agentServices.get(agentId)
        return (own === undefined ? get(agent.provider) : Effect.succeed(own)).pipe(
          Effect.map((llm) => {
            // Its own `rate_limits` (issue 14) see the request with the agent's defaults applied.
            const withAgentDefaults = withDefaults(rateLimits.agent(agentId, llm), agent)
            // Its calls count against the agent's scope (under budgets.scopes "*" too).
            return budget === undefined ? withAgentDefaults : BudgetScope.withScope(withAgentDefaults, agentId)
          }),
          Effect.orDieWith((error) => new Error(`agent ${agentId}: ${error.message}`))
        )
      })

    const usageSummary: Effect.Effect<Summary> = Effect.gen(function*() {
      const list = yield* all
      const summaries: Array<ProviderSummary> = []
      for (const { base, id } of list) {
        summaries.push({ id, type: base.providerType, defaultModel: base.defaultModel, usage: yield* base.usage })
      }
      const total = summaries.reduce((acc, s) => Usage.combine(acc, s.usage), Usage.empty)
      const models = summaries.flatMap((s) =>
        Object.entries(s.usage.byModel).map(([model, usage]): ModelSummary => ({ ...usage, provider: s.id, model }))
      )
      return { providers: summaries, models, total, table: SummaryTable.renderTable(summaries, total) }
    })

    const checkConnectivity = (connectivity?: ConnectivityOptions) =>
      Effect.flatMap(all, (list) => {
        const timeout = Duration.decode(connectivity?.timeout ?? Duration.seconds(10))
        // The provider itself: no retry, breaker or fallback stands between it and the question.
        return Effect.forEach(list, ({ base, id }) =>
          base.complete({ messages: [Message.user("ping")], maxTokens: 1 }).pipe(
            Effect.timeoutFail({
              duration: timeout,
              onTimeout: () =>
                new LLMError.TimeoutError({
                  provider: id,
                  message: `${id}: no answer to the connectivity check within ${Duration.format(timeout)}`,
                  timeout
                })
            }),
            Effect.either,
            Effect.timed,
            Effect.map(([elapsed, result]): ConnectivityResult => {
              const latencyMs = Math.round(Duration.toMillis(elapsed))
              return Either.isRight(result)
                ? { id, ok: true, latencyMs }
                : { id, ok: false, error: result.left, latencyMs }
            })
          ), { concurrency: "unbounded" })
      })

    const localTotal = Effect.flatMap(
      all,
      (list) =>
        Effect.reduce(list, Usage.empty, (acc, { base }) => Effect.map(base.usage, (u) => Usage.combine(acc, u)))
    )
    return {
      get,
      getForAgent,
      register: (id, llm) => Ref.update(entries, (map) => new Map(map).set(id, { id, base: llm, llm })),
      list: Effect.map(
        all,
        (list) => list.map(({ base, id }) => ({ id, type: base.providerType, defaultModel: base.defaultModel }))
      ),
      agents: Effect.map(Ref.get(agents), (map) => Array.from(map.keys())),
      // The providers themselves, each once: a fallback chain's `usage` would count its members again.
      totalUsage: localTotal,
      usageTotals: Option.isNone(sharedUsage) ? Effect.map(localTotal, (usage) => ({ scope: "local", usage })) : Effect
        .zipRight(Effect.ignore(sharedUsage.value.flush), sharedUsage.value.totals).pipe(
          Effect.map((usage): UsageTotals => ({ scope: "shared", usage })),
          Effect.catchAll((e) =>
            Effect.map(localTotal, (usage): UsageTotals => ({ scope: "local", usage, error: e.message }))
          )
        ),
      usageSummary,
      resetAllUsage: Effect.flatMap(
        all,
        (list) => Effect.forEach(list, ({ base }) => base.resetUsage, { discard: true })
      ),
      checkConnectivity,
      budget: Option.fromNullable(budget)
    } satisfies Service
  })

/** The budget a config asks for, if it asks for one. */
const budgetOptionsOf = (config: ProvidersConfig.ProvidersConfig): Budget.Options | undefined => {
  const providers: Record<string, Budget.Limit> = {}
  for (const provider of Object.values(config.providers)) {
    if (provider.budget !== undefined) providers[provider.id] = provider.budget
  }
  const scopes: Record<string, Budget.Limit> = { ...config.budgets?.scopes }
  for (const agent of Object.values(config.agents)) {
    if (agent.budget !== undefined) scopes[agent.id] = agent.budget
  }
  const budgets = config.budgets
  if (budgets === undefined && Object.keys(providers).length === 0 && Object.keys(scopes).length === 0) {
    return undefined
  }
  return {
    total: budgets?.total,
    providers,
    scopes,
    thresholds: budgets?.thresholds,
    committedThresholds: budgets?.committedThresholds,
    unpriced: budgets?.unpriced,
    unmetered: budgets?.unmetered,
    maxReserveUsd: budgets?.maxReserveUsd
  }
}

const validated = (service: Service, options?: Options): Effect.Effect<Service, ConnectivityError> =>
  options?.validateConnectivity !== true ? Effect.succeed(service) : service.checkConnectivity({
    timeout: options.connectivityTimeout
  }).pipe(
    Effect.flatMap((results) => {
      const failures = results.flatMap((r) => r.error === undefined ? [] : [{ id: r.id, error: r.error }])
      return failures.length === 0
        ? Effect.succeed(service)
        : Effect.fail(new ConnectivityError({ failures, checked: results.length }))
    })
  )

// -----------------------------------------------------------------------------
// Layers
// -----------------------------------------------------------------------------

/**
 * The registry of a config: decoded, or a document written in code as the YAML would be (see
 * {@link ConfigInput}; a bad one fails with a `ProvidersConfigError`, never a defect). With `validateConnectivity` it asks every provider a 1-token
 * question first and fails with a `ConnectivityError` listing every provider that did not answer.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerFromConfig = (
  config: ConfigInput,
  options?: Options
): Layer.Layer<ProviderRegistry, ProvidersConfig.ProvidersConfigError | ConnectivityError> =>
  Layer.scoped(ProviderRegistry, Effect.flatMap(make(config, options), (service) => validated(service, options)))

/**
 * The registry of a YAML file (see `ProvidersConfig.load`). The registry's own checks (a factory
 * for each provider's type, a LiteLLM prefix it knows) are made in the same round as the file's:
 * one `ProvidersConfigError` lists every problem, each at its `file:line:col`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerFromFile = (
  path: string,
  options?: Options
): Layer.Layer<ProviderRegistry, ProvidersConfig.ProvidersConfigError | ConnectivityError, FileSystem.FileSystem> =>
  Layer.scoped(
    ProviderRegistry,
    ProvidersConfig.load(path, { checkProvider: registryChecks({ ...factories, ...options?.factories }) }).pipe(
      Effect.flatMap((config) => make(config, options)),
      Effect.flatMap((service) => validated(service, options))
    )
  )

/**
 * The `LLM` of a registered provider, from the registry in context.
 *
 * @since 0.1.0
 * @category Layers
 */
export const llm = (id: string): Layer.Layer<LLM.LLM, UnknownProviderError, ProviderRegistry> =>
  Layer.effect(LLM.LLM, Effect.flatMap(ProviderRegistry, (registry) => registry.get(id)))

/**
 * The `LLM` of an agent (its provider with the agent's request defaults), from the registry in
 * context.
 *
 * @since 0.1.0
 * @category Layers
 */
export const agent = (agentId: string): Layer.Layer<LLM.LLM, UnknownAgentError, ProviderRegistry> =>
  Layer.effect(LLM.LLM, Effect.flatMap(ProviderRegistry, (registry) => registry.getForAgent(agentId)))

// -----------------------------------------------------------------------------
// Accessors
// -----------------------------------------------------------------------------

/**
 * The provider registered under `id`.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const get = (id: string): Effect.Effect<LLM.Service, UnknownProviderError, ProviderRegistry> =>
  Effect.flatMap(ProviderRegistry, (registry) => registry.get(id))

/**
 * An agent's `LLM`.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const getForAgent = (agentId: string): Effect.Effect<LLM.Service, UnknownAgentError, ProviderRegistry> =>
  Effect.flatMap(ProviderRegistry, (registry) => registry.getForAgent(agentId))

/**
 * Registers (or replaces) a provider built elsewhere.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const register = (id: string, llm: LLM.Service): Effect.Effect<void, never, ProviderRegistry> =>
  Effect.flatMap(ProviderRegistry, (registry) => registry.register(id, llm))

/**
 * The registered providers.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const list: Effect.Effect<ReadonlyArray<ProviderInfo>, never, ProviderRegistry> = Effect.flatMap(
  ProviderRegistry,
  (registry) => registry.list
)

/**
 * The ids of the configured agents.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const agents: Effect.Effect<ReadonlyArray<string>, never, ProviderRegistry> = Effect.flatMap(
  ProviderRegistry,
  (registry) => registry.agents
)

/**
 * The usage of every provider, summed.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const totalUsage: Effect.Effect<Usage.TokenUsage, never, ProviderRegistry> = Effect.flatMap(
  ProviderRegistry,
  (registry) => registry.totalUsage
)

/**
 * The usage totals, shared across processes when a `SharedState` is configured (see {@link UsageTotals}).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ProviderRegistry } from "@orchestify/providers"
 *
 * const program = Effect.map(ProviderRegistry.usageTotals, (t) => `${t.scope}: ${t.usage.calls} calls`)
 * ```
 *
 * @since 0.1.0
 * @category Accessors
 */
export const usageTotals: Effect.Effect<UsageTotals, never, ProviderRegistry> = Effect.flatMap(
  ProviderRegistry,
  (registry) => registry.usageTotals
)

/**
 * The usage of every provider and model, with a readable table.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const usageSummary: Effect.Effect<Summary, never, ProviderRegistry> = Effect.flatMap(
  ProviderRegistry,
  (registry) => registry.usageSummary
)

/**
 * Resets the usage of every provider.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const resetAllUsage: Effect.Effect<void, never, ProviderRegistry> = Effect.flatMap(
  ProviderRegistry,
  (registry) => registry.resetAllUsage
)

/**
 * Asks every provider a 1-token question in parallel and reports every result.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const checkConnectivity = (
  options?: ConnectivityOptions
): Effect.Effect<ReadonlyArray<ConnectivityResult>, never, ProviderRegistry> =>
  Effect.flatMap(ProviderRegistry, (registry) => registry.checkConnectivity(options))
