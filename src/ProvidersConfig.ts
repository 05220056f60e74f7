/**
 * The configuration of a `ProviderRegistry`: the Schema of the YAML file (providers and agents),
 * `${VAR}` substitution read through Effect's `ConfigProvider`, and `load` / `parse` / `decode`,
 * which report every problem of a file at once, each naming where it is (`file:line:col` of its
 * YAML node, and the field's path). The substitution, the checks across fields and the wording of
 * problems live in `internal/config/`.
 *
 * ```yaml
 * providers:
 *   claude_main:
 *     type: anthropic            # anthropic | openai | litellm (inferred from default_model when absent)
 *     api_key: ${ANTHROPIC_API_KEY}
 *     default_model: claude-sonnet-4-5
 *     max_tokens: 8192
 *     timeout: 60 seconds        # the HTTP client's: headers, and each read of the body
 *     request_timeout: { total: 2 minutes, first_event: 30 seconds }   # Resilience.withTimeout, per attempt
 *     retry: { max_retries: 3, base_delay: 500 millis }                # or true (the defaults) / false
 *     circuit_breaker: { failure_threshold: 5, reset_timeout: 30 seconds }
 *     fallbacks: [openai_main]   # asked in order once claude_main gives up
 *   openai_main:
 *     api_key: ${OPENAI_API_KEY}
 *     default_model: gpt-4o      # type: openai, inferred
 *     base_url: ${OPENAI_BASE_URL:-https://api.openai.com/v1}
 * agents:
 *   planner: { provider: claude_main, model: claude-opus-4-1, max_tokens: 4096, system: "You plan." }
 *   scout: { provider: claude_main, retry: false, fallbacks: [] }   # replaces claude_main's settings
 * ```
 *
 * An API key (and every `headers` value) is a `Redacted` from the moment it is read: no error,
 * summary or `inspect` output shows it.
 *
 * @example
 * ```ts
 * import { NodeContext } from "@effect/platform-node"
 * import { ConfigProvider, Effect } from "effect"
 * import { ProvidersConfig } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const config = yield* ProvidersConfig.load("providers.yaml")
 *   return Object.keys(config.providers)
 * }).pipe(
 *   // `${VAR}`s are read from the ConfigProvider: the environment by default, a map in tests
 *   Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["ANTHROPIC_API_KEY", "sk-ant-test"]]))),
 *   Effect.provide(NodeContext.layer)
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as YAML from "yaml"
import * as Checks from "./internal/config/checks.js"
import * as Locate from "./internal/config/locate.js"
import { describe, isRecord, onOff, type Problem, startsWith } from "./internal/config/problem.js"
import * as ProviderTypes from "./internal/config/providerType.js"
import * as Render from "./internal/config/render.js"
import { substitute } from "./internal/config/substitute.js"
import * as Pricing from "./Pricing.js"

// -----------------------------------------------------------------------------
// Errors
// -----------------------------------------------------------------------------

/**
 * A configuration that cannot be used: a file that cannot be read or parsed, a bad field, a
 * missing `${VAR}`, an agent naming no defined provider. `path` is the file (or the `source` given
 * to {@link parse}); `problems` holds every problem found, each naming its place
 * (`providers.claude_main.max_tokens: expected a positive integer, got "lots"`,
 * `examples/x.yaml:7:3: ...`).
 *
 * @since 0.1.0
 * @category Errors
 */
export class ProvidersConfigError extends Schema.TaggedError<ProvidersConfigError>()("ProvidersConfigError", {
  path: Schema.String,
  problems: Schema.Array(Schema.String)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    const count = this.problems.length === 1 ? "1 problem" : `${this.problems.length} problems`
    return [`Invalid provider configuration in ${this.path} (${count}):`, ...this.problems.map((p) => `  - ${p}`)]
      .join("\n")
  }
}

/**
 * The old name of {@link ProvidersConfigError}, which shadowed `effect/ConfigError` wherever both
 * were imported. Its `_tag` is now `"ProvidersConfigError"`.
 *
 * @deprecated Use {@link ProvidersConfigError}.
 * @since 0.1.0
 * @category Errors
 */
export const ConfigError = ProvidersConfigError

/**
 * The old name of {@link ProvidersConfigError}.
 *
 * @deprecated Use {@link ProvidersConfigError}.
 * @since 0.1.0
 * @category Errors
 */
export type ConfigError = ProvidersConfigError

// -----------------------------------------------------------------------------
// Models
// -----------------------------------------------------------------------------

/**
 * The kinds of provider a config can name.
 *
 * @since 0.1.0
 * @category Models
 */
export type ProviderType = ProviderTypes.ProviderType

/**
 * Every {@link ProviderType}.
 *
 * @since 0.1.0
 * @category Models
 */
export const providerTypes: ReadonlyArray<ProviderType> = ProviderTypes.providerTypes

/**
 * The retries of each call of a provider or agent, as `Resilience.retry` takes them
 * (`Resilience.RetryOptions`): `max_retries`, `base_delay`, `factor`, `max_delay`,
 * `max_retry_after`, `max_elapsed`, `jitter` in the file.
 *
 * @since 0.1.0
 * @category Models
 */
export type RetrySettings = Schema.Schema.Type<typeof RetrySettingsSchema>

/**
 * The timeouts of each attempt, as `Resilience.withTimeout` takes them (`Resilience.Timeouts`):
 * `total`, `first_event`, `idle` in the file.
 *
 * @since 0.1.0
 * @category Models
 */
export type RequestTimeoutSettings = Schema.Schema.Type<typeof RequestTimeoutSettingsSchema>

/**
 * A circuit breaker, as `Resilience.withCircuitBreaker` takes it (`Resilience.CircuitBreakerOptions`):
 * `failure_threshold`, `reset_timeout`, `failure_rate`, `minimum_calls`, `window` in the file.
 *
 * @since 0.1.0
 * @category Models
 */
export type CircuitBreakerSettings = Schema.Schema.Type<typeof CircuitBreakerSettingsSchema>

/**
 * A spend limit, as `Budget.Limit` takes it: `usd`, `tokens` (input plus output) and a rolling
 * `window` (a duration) in the file. Under a provider it limits that provider's calls; under an
 * agent, the agent's (its scope); under `budgets`, the total or a scope.
 *
 * @since 0.1.0
 * @category Models
 */
export type BudgetSettings = Schema.Schema.Type<typeof BudgetSettingsSchema>

/**
 * The top-level `budgets` mapping: the `total` limit, limits per scope (`scopes`, with `"*"` for
 * every scope not named) and the rules of `Budget.Options` (`thresholds`, `committed_thresholds`,
 * `unpriced`, `unmetered`, `max_reserve_usd` in the file).
 *
 * @since 0.1.0
 * @category Models
 */
export type BudgetsSettings = Schema.Schema.Type<typeof BudgetsSchema>

// -----------------------------------------------------------------------------
// Rate limits and shared state (issue 14): types
// -----------------------------------------------------------------------------

/**
 * A `rate_limits` mapping of a provider or agent, as `RateLimit.Limits` takes it: `rpm`, `tpm`,
 * `itpm`, `otpm` per `period` (default one minute), and `max_wait` (default 30 s), the longest a
 * call waits for its turn. Under a provider: each of its models; under an agent: the agent's calls.
 *
 * @since 0.1.0
 * @category Models
 */
export type RateLimitSettings = Schema.Schema.Type<typeof RateLimitSettingsSchema>

/**
 * The top-level `shared_state` mapping: `redis_url` (a secret: `${REDIS_URL}`), `namespace`,
 * `on_unavailable` (`fail` or `local`: what budgets do when the store is unavailable; rate limits
 * always fall back to local state) and `timeout` (of every store call, default 250 ms).
 *
 * @since 0.1.0
 * @category Models
 */
export type SharedStateSettings = Schema.Schema.Type<typeof SharedStateSettingsSchema>

// (end of rate limits and shared state: types)

/**
 * What the registry wraps a provider's (or an agent's) `LLM` in, in `Resilience.wrap`'s order:
 * `fallback(retry(circuitBreaker(timeout(llm))))`. A setting left out is not applied; `false` turns
 * it off (for an agent: turns off its provider's). An agent's setting replaces its provider's, field
 * by field.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ResilienceSettings {
  /** `retry`: `true` (the defaults), `false`, or {@link RetrySettings}. */
  readonly retry?: RetrySettings | false | undefined
  /**
   * `request_timeout`: the timeouts of each attempt (`Resilience.withTimeout`). Not the provider's
   * `timeout`, which is its HTTP client's wait for the reply's headers and each read of its body.
   */
  readonly requestTimeout?: RequestTimeoutSettings | false | undefined
  /** `circuit_breaker`: `true` (the defaults), `false`, or {@link CircuitBreakerSettings}. */
  readonly circuitBreaker?: CircuitBreakerSettings | false | undefined
  /** `fallbacks`: ids of other providers of the config, asked in order once this one gives up. */
  readonly fallbacks?: ReadonlyArray<string> | undefined
  /** `same_model`: send the request's model to the fallbacks too. Default `false`: each uses its own default model. */
  readonly sameModel?: boolean | undefined
}

/**
 * One provider, as the registry builds it.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Provider extends ResilienceSettings {
  /** The key under `providers`, e.g. `"claude_main"`; the `providerId` of its `LLM`. */
  readonly id: string
  /** As written, or inferred from `defaultModel`. */
  readonly type: ProviderType
  readonly apiKey?: Redacted.Redacted<string> | undefined
  readonly defaultModel?: string | undefined
  readonly maxTokens?: number | undefined
  /** `clamp_max_tokens`: cut `maxTokens` to what fits the model's window instead of refusing the call. */
  readonly clampMaxTokens?: boolean | undefined
  readonly baseUrl?: string | undefined
  readonly timeout?: Duration.Duration | undefined
  /** Price overrides (USD per million tokens), looked up before the built-in table. */
  readonly pricing?: Pricing.PriceTable | undefined
  /** `openai` only. */
  readonly organization?: string | undefined
  /** `openai` only. */
  readonly project?: string | undefined
  /** `litellm` only (Azure's `api-version`). */
  readonly apiVersion?: string | undefined
  /** Extra headers sent with every request; values are `Redacted`, as they often carry credentials. */
  readonly headers?: Readonly<Record<string, Redacted.Redacted<string>>> | undefined
  /** `budget`: the limit of this provider's calls (every attempt, its agents' included). */
  readonly budget?: BudgetSettings | undefined
  /** `rate_limits` (issue 14): the client-side limits of each of this provider's models (every attempt). */
  readonly rateLimits?: RateLimitSettings | undefined
}

/**
 * One agent: a provider and the request defaults applied to its calls.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Agent extends ResilienceSettings {
  /** The key under `agents`, e.g. `"planner"`. */
  readonly id: string
  /** The id of a provider of the same config. */
  readonly provider: string
  readonly model?: string | undefined
  readonly maxTokens?: number | undefined
  readonly temperature?: number | undefined
  readonly system?: string | undefined
  /** `budget`: the limit of this agent's calls (the budget scope named by the agent's id). */
  readonly budget?: BudgetSettings | undefined
  /** `rate_limits` (issue 14): the client-side limits of this agent's calls, on top of its provider's. */
  readonly rateLimits?: RateLimitSettings | undefined
}

/**
 * A loaded configuration.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ProvidersConfig {
  /** The file it was read from, or the `source` given to {@link parse}. */
  readonly source: string
  /** By id, in the order of the file. */
  readonly providers: Readonly<Record<string, Provider>>
  /** By id, in the order of the file. */
  readonly agents: Readonly<Record<string, Agent>>
  /** `budgets`: the total and per-scope limits, and the budget's rules. */
  readonly budgets?: BudgetsSettings | undefined
  /** `shared_state` (issue 14): the store rate limits share across processes. */
  readonly sharedState?: SharedStateSettings | undefined
}

// -----------------------------------------------------------------------------
// Schema
// -----------------------------------------------------------------------------

/**
 * Reports a failure of `schema` as `expected <what>, got <actual>` (the actual left out for
 * secrets). With `override` (the default) the message replaces those of everything inside;
 * without, it is used only when the value itself has the wrong shape.
 */
const expecting = <S extends Schema.Schema.All>(
  schema: S,
  what: string,
  options?: { readonly showActual?: boolean; readonly override?: boolean }
): S =>
  schema.annotations({
    message: (issue) => ({
      message: options?.showActual === false ? `expected ${what}` : `expected ${what}, got ${describe(issue.actual)}`,
      override: options?.override ?? true
    })
  }) as S

const NonEmptyString = expecting(Schema.String.pipe(Schema.minLength(1)), "a non-empty string")

const Url = expecting(
  Schema.String.pipe(Schema.filter((s) => {
    try {
      const url = new URL(s)
      return url.protocol === "http:" || url.protocol === "https:"
    } catch {
      return false
    }
  })),
  "an http(s) URL"
)

const NumberLike = Schema.Union(Schema.Number, Schema.NumberFromString)

const PositiveInt = expecting(NumberLike.pipe(Schema.int(), Schema.positive()), "a positive integer")

const NonNegativeInt = expecting(NumberLike.pipe(Schema.int(), Schema.nonNegative()), "a non-negative integer")

const Flag = expecting(Schema.Union(Schema.Boolean, Schema.BooleanFromString), "true or false")

const Temperature = expecting(
  NumberLike.pipe(Schema.finite(), Schema.between(0, 2)),
  "a number between 0 and 2"
)

const TimeoutSchema = expecting(
  Schema.transformOrFail(Schema.Union(Schema.Number, Schema.String), Schema.DurationFromSelf, {
    strict: true,
    decode: (input, _, ast) => {
      const decoded = typeof input === "number"
        ? Number.isFinite(input) ? Option.some(Duration.seconds(input)) : Option.none()
        : Duration.decodeUnknown(input.trim())
      return Option.isSome(decoded) && Duration.greaterThan(decoded.value, Duration.zero)
        ? ParseResult.succeed(decoded.value)
        : ParseResult.fail(new ParseResult.Type(ast, input))
    },
    encode: (duration) => ParseResult.succeed(Duration.toSeconds(duration))
  }),
  "a duration such as \"30 seconds\" or a number of seconds"
)

/** A secret: a string from the file, or the `Redacted` that `${VAR}` substitution made of it. */
const Secret = expecting(
  Schema.Union(Schema.RedactedFromSelf(Schema.String), Schema.Redacted(Schema.String)).pipe(
    Schema.filter((secret) => Redacted.value(secret).length > 0)
  ),
  "a non-empty string",
  { showActual: false }
)

const Headers = expecting(
  Schema.Record({ key: Schema.String, value: Secret }),
  "a mapping of header names to strings",
  { showActual: false }
)

const ProviderTypeSchema = expecting(
  Schema.Literal(...providerTypes),
  "one of anthropic, openai, litellm"
)

const strict = { parseOptions: { onExcessProperty: "error" } } as const

const optional = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true })

const optionalKey = <S extends Schema.Schema.Any, K extends string>(schema: S, key: K) =>
  Schema.optionalWith(schema, { exact: true }).pipe(Schema.fromKey(key))

/**
 * The `retry` mapping of a provider or agent (snake_case keys; unknown keys are refused).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const RetrySettingsSchema = Schema.Struct({
  maxRetries: optionalKey(NonNegativeInt, "max_retries"),
  baseDelay: optionalKey(TimeoutSchema, "base_delay"),
  factor: optional(
    expecting(NumberLike.pipe(Schema.finite(), Schema.greaterThanOrEqualTo(1)), "a number of at least 1")
  ),
  maxDelay: optionalKey(TimeoutSchema, "max_delay"),
  maxRetryAfter: optionalKey(TimeoutSchema, "max_retry_after"),
  maxElapsed: optionalKey(TimeoutSchema, "max_elapsed"),
  jitter: optional(Flag)
}).annotations({ identifier: "RetrySettings", ...strict })

/**
 * The `request_timeout` mapping of a provider or agent (snake_case keys; unknown keys are refused).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const RequestTimeoutSettingsSchema = Schema.Struct({
  total: optional(TimeoutSchema),
  firstEvent: optionalKey(TimeoutSchema, "first_event"),
  idle: optional(TimeoutSchema)
}).annotations({ identifier: "RequestTimeoutSettings", ...strict })

/**
 * The `circuit_breaker` mapping of a provider or agent (snake_case keys; unknown keys are refused).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const CircuitBreakerSettingsSchema = Schema.Struct({
  failureThreshold: optionalKey(PositiveInt, "failure_threshold"),
  resetTimeout: optionalKey(TimeoutSchema, "reset_timeout"),
  failureRate: optionalKey(
    expecting(
      NumberLike.pipe(Schema.finite(), Schema.greaterThan(0), Schema.lessThanOrEqualTo(1)),
      "a number greater than 0 and at most 1"
    ),
    "failure_rate"
  ),
  minimumCalls: optionalKey(PositiveInt, "minimum_calls"),
  window: optional(TimeoutSchema)
}).annotations({ identifier: "CircuitBreakerSettings", ...strict })

const NonNegativeNumber = expecting(NumberLike.pipe(Schema.finite(), Schema.nonNegative()), "a non-negative number")

const Share = expecting(NumberLike.pipe(Schema.finite(), Schema.positive()), "a positive number (a share, e.g. 0.8)")

/**
 * A `budget` mapping of a provider or agent, or a limit under `budgets` (snake_case keys; unknown
 * keys are refused): `usd`, `tokens`, `window`.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const BudgetSettingsSchema = Schema.Struct({
  usd: optional(NonNegativeNumber),
  tokens: optional(NonNegativeInt),
  window: optional(TimeoutSchema)
}).annotations({ identifier: "BudgetSettings", ...strict })

const BudgetSettingsField = expecting(BudgetSettingsSchema, "a mapping with usd, tokens and window", {
  override: false
})

/**
 * The top-level `budgets` mapping (snake_case keys; unknown keys are refused).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const BudgetsSchema = Schema.Struct({
  total: optional(BudgetSettingsField),
  scopes: optional(expecting(
    Schema.Record({ key: Schema.String, value: BudgetSettingsField }),
    "a mapping of scope ids to limits",
    { override: false }
  )),
  thresholds: optional(expecting(Schema.Array(Share), "a list of shares such as [0.5, 0.8, 1]", { override: false })),
  committedThresholds: optionalKey(
    expecting(Schema.Array(Share), "a list of shares such as [0.8, 1]", { override: false }),
    "committed_thresholds"
  ),
  unpriced: optional(expecting(Schema.Literal("refuse", "allow"), "refuse or allow")),
  unmetered: optional(expecting(Schema.Literal("reservation", "zero"), "reservation or zero")),
  maxReserveUsd: optionalKey(
    expecting(NumberLike.pipe(Schema.finite(), Schema.positive()), "a positive number"),
    "max_reserve_usd"
  )
}).annotations({ identifier: "BudgetsSettings", ...strict })

// -----------------------------------------------------------------------------
// Rate limits and shared state (issue 14): schemas
// -----------------------------------------------------------------------------

/**
 * A `rate_limits` mapping of a provider or agent (snake_case keys; unknown keys are refused).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const RateLimitSettingsSchema = Schema.Struct({
  rpm: optional(PositiveInt),
  tpm: optional(PositiveInt),
  itpm: optional(PositiveInt),
  otpm: optional(PositiveInt),
  period: optional(TimeoutSchema),
  maxWait: optionalKey(TimeoutSchema, "max_wait")
}).annotations({ identifier: "RateLimitSettings", ...strict })

const RateLimitSettingsField = expecting(
  RateLimitSettingsSchema,
  "a mapping with rpm, tpm, itpm, otpm, period and max_wait",
  { override: false }
)

/**
 * The top-level `shared_state` mapping (snake_case keys; unknown keys are refused).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const SharedStateSettingsSchema = Schema.Struct({
  redisUrl: optionalKey(Secret, "redis_url"),
  namespace: optional(NonEmptyString),
  onUnavailable: optionalKey(expecting(Schema.Literal("fail", "local"), "fail or local"), "on_unavailable"),
  timeout: optional(TimeoutSchema)
}).annotations({ identifier: "SharedStateSettings", ...strict })

const SharedStateSettingsField = expecting(
  SharedStateSettingsSchema,
  "a mapping with redis_url, namespace, on_unavailable and timeout",
  { override: false }
)

// (end of rate limits and shared state: schemas)

/**
 * A setting written as a mapping, as `false` (off), as `true` (when `whenTrue` is given) or as a
 * scalar that `scalar` reads. A mapping is decoded with `settings`, its problems named by their own
 * paths; anything else is `expected <what>, got <actual>`.
 */
const switchable = <A, I>(
  settings: Schema.Schema<A, I>,
  what: string,
  options: { readonly whenTrue?: A; readonly scalar?: (input: unknown) => Option.Option<A> }
): Schema.Schema<A | false, unknown> =>
  Schema.transformOrFail(Schema.Unknown, Schema.Union(Schema.Literal(false), Schema.typeSchema(settings)), {
    strict: true,
    decode: (input, parseOptions, ast) => {
      if (isRecord(input)) return ParseResult.decodeUnknown(settings)(input, parseOptions)
      const flag = onOff(input)
      if (flag === false) return ParseResult.succeed(false as const)
      if (flag === true && options.whenTrue !== undefined) return ParseResult.succeed(options.whenTrue)
      const scalar = options.scalar === undefined ? Option.none() : options.scalar(input)
      return Option.isSome(scalar)
        ? ParseResult.succeed(scalar.value)
        : ParseResult.fail(new ParseResult.Type(ast, input, `expected ${what}, got ${describe(input)}`))
    },
    encode: (value) => value === false ? ParseResult.succeed(false) : ParseResult.encodeUnknown(settings)(value)
  })

const Retry = switchable(RetrySettingsSchema, "true, false or a mapping of retry settings", { whenTrue: {} })

const RequestTimeout = switchable(
  RequestTimeoutSettingsSchema,
  "a duration such as \"30 seconds\", a number of seconds, false, or a mapping with total, first_event and idle",
  {
    scalar: (input) =>
      typeof input === "number" || typeof input === "string"
        ? Option.map(Either.getRight(Schema.decodeUnknownEither(TimeoutSchema)(input)), (total) => ({ total }))
        : Option.none()
  }
)

const CircuitBreaker = switchable(
  CircuitBreakerSettingsSchema,
  "true, false or a mapping of circuit breaker settings",
  { whenTrue: {} }
)

const Fallbacks = expecting(
  Schema.Array(expecting(Schema.String.pipe(Schema.minLength(1)), "a provider id")),
  "a list of provider ids",
  { override: false }
)

/** The fields a provider and an agent both take: see {@link ResilienceSettings}. */
const resilienceFields = {
  retry: optional(Retry),
  requestTimeout: optionalKey(RequestTimeout, "request_timeout"),
  circuitBreaker: optionalKey(CircuitBreaker, "circuit_breaker"),
  fallbacks: optional(Fallbacks),
  sameModel: optionalKey(Flag, "same_model")
}

/**
 * One entry under `providers`, as written (snake_case keys; unknown keys are refused).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ProviderSchema = Schema.Struct({
  type: optional(ProviderTypeSchema),
  apiKey: optionalKey(Secret, "api_key"),
  defaultModel: optionalKey(NonEmptyString, "default_model"),
  maxTokens: optionalKey(PositiveInt, "max_tokens"),
  clampMaxTokens: optionalKey(Schema.Boolean, "clamp_max_tokens"),
  baseUrl: optionalKey(Url, "base_url"),
  timeout: optional(TimeoutSchema),
  pricing: optional(Pricing.PriceTableSchema),
  organization: optional(NonEmptyString),
  project: optional(NonEmptyString),
  apiVersion: optionalKey(NonEmptyString, "api_version"),
  headers: optional(Headers),
  ...resilienceFields,
  budget: optional(BudgetSettingsField),
  rateLimits: optionalKey(RateLimitSettingsField, "rate_limits")
}).annotations({ identifier: "Provider", ...strict })

/**
 * One entry under `providers` once decoded (its `type` may still be absent).
 *
 * @since 0.1.0
 * @category Models
 */
export type ProviderSettings = Schema.Schema.Type<typeof ProviderSchema>

/**
 * One entry under `agents`, as written (snake_case keys; unknown keys are refused).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const AgentSchema = Schema.Struct({
  provider: NonEmptyString,
  model: optional(NonEmptyString),
  maxTokens: optionalKey(PositiveInt, "max_tokens"),
  temperature: optional(Temperature),
  system: optional(expecting(Schema.String, "a string")),
  ...resilienceFields,
  budget: optional(BudgetSettingsField),
  rateLimits: optionalKey(RateLimitSettingsField, "rate_limits")
}).annotations({ identifier: "Agent", ...strict })

/**
 * One entry under `agents` once decoded.
 *
 * @since 0.1.0
 * @category Models
 */
export type AgentSettings = Schema.Schema.Type<typeof AgentSchema>

/**
 * The whole file: `providers` (required) and `agents` (optional), decoded field by field. The
 * checks that span fields (type inference, agents naming defined providers, fields a provider type
 * does not take) are made by {@link decode}, which reports them together with this Schema's.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const FileSchema = Schema.Struct({
  providers: expecting(
    Schema.Record({ key: Schema.String, value: ProviderSchema }),
    "a mapping of provider ids to providers",
    { override: false }
  ),
  agents: optional(expecting(
    Schema.Record({ key: Schema.String, value: AgentSchema }),
    "a mapping of agent ids to agents",
    { override: false }
  )),
  budgets: optional(expecting(BudgetsSchema, "a mapping with total, scopes and the budget's rules", {
    override: false
  })),
  sharedState: optionalKey(SharedStateSettingsField, "shared_state")
}).annotations({ identifier: "ProvidersConfig", ...strict })

/**
 * The whole file as written: what YAML (or `JSON.parse`) gives, and what a config written in code
 * looks like (snake_case keys, `${VAR}`s, durations as text). {@link decode} turns it into a
 * {@link ProvidersConfig}.
 *
 * @since 0.1.0
 * @category Models
 */
export type Document = Schema.Schema.Encoded<typeof FileSchema>

/**
 * The whole file once decoded.
 *
 * @since 0.1.0
 * @category Models
 */
export type FileSettings = Schema.Schema.Type<typeof FileSchema>

/**
 * Whether `u` is a decoded {@link ProvidersConfig} (what {@link decode}, {@link parse} and
 * {@link load} give), rather than a {@link Document} still to decode.
 *
 * @since 0.1.0
 * @category Guards
 */
export const isProvidersConfig = (u: unknown): u is ProvidersConfig =>
  isRecord(u) && typeof u.source === "string" && isRecord(u.providers) && isRecord(u.agents) &&
  Object.values(u.providers).every((p) => isRecord(p) && typeof p.id === "string" && typeof p.type === "string") &&
  Object.values(u.agents).every((a) => isRecord(a) && typeof a.id === "string" && typeof a.provider === "string")

// -----------------------------------------------------------------------------
// Type inference
// -----------------------------------------------------------------------------

/**
 * The provider type a model name implies: `claude-*` is `anthropic`; `gpt-*`, `chatgpt-*`, `o1`,
 * `o3`, `o4` (and their `-mini`, ... variants) are `openai`; a LiteLLM-style `prefix/model`
 * (`azure/gpt-4`, `ollama/llama3`, `groq/...`) is `litellm`.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const inferType: (model: string) => Option.Option<ProviderType> = ProviderTypes.inferType

// -----------------------------------------------------------------------------
// Constructors
// -----------------------------------------------------------------------------

const resolve = (file: FileSettings, source: string): ProvidersConfig => {
  const providers: Record<string, Provider> = {}
  for (const [id, settings] of Object.entries(file.providers)) {
    const type = settings.type ?? Option.getOrThrow(inferType(settings.defaultModel ?? ""))
    providers[id] = { ...settings, id, type }
  }
  const agents: Record<string, Agent> = {}
  for (const [id, settings] of Object.entries(file.agents ?? {})) {
    agents[id] = { ...settings, id }
  }
  const resolved: ProvidersConfig = file.budgets === undefined
    ? { source, providers, agents }
    : { source, providers, agents, budgets: file.budgets }
  // Rate limits and shared state (issue 14).
  return file.sharedState === undefined ? resolved : { ...resolved, sharedState: file.sharedState }
}

/**
 * A provider as far as a document could be decoded, as {@link DecodeOptions.checkProvider} sees it:
 * its id, its type (written, or inferred from `default_model`), and `default_model` and `base_url`
 * when written. A decoded {@link Provider} is one too.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ProviderOutline {
  readonly id: string
  readonly type: ProviderType
  readonly defaultModel?: string | undefined
  readonly baseUrl?: string | undefined
}

/**
 * A problem that a {@link DecodeOptions.checkProvider} found in one field of a provider (`field` as
 * written in the file, e.g. `"default_model"`).
 *
 * @since 0.1.0
 * @category Models
 */
export interface FieldProblem {
  readonly field: string
  readonly message: string
}

/**
 * Options of {@link decode}, {@link parse} and {@link load}.
 *
 * @since 0.1.0
 * @category Models
 */
export interface DecodeOptions {
  /**
   * More checks of each provider whose type is known, made in the same round as the file's own, so
   * that one error lists every problem (`ProviderRegistry` passes its own: a factory for the type,
   * a LiteLLM prefix it knows).
   */
  readonly checkProvider?: ((provider: ProviderOutline) => ReadonlyArray<FieldProblem>) | undefined
}

const emptyDocument = "the configuration is empty; expected a mapping with providers (and optionally agents)"

/** Substitution, the Schema, the checks across fields and `checkProvider`, in one round. */
const decodeLocated = (
  document: unknown,
  source: string,
  locate: Render.Locate | undefined,
  options: DecodeOptions | undefined
): Effect.Effect<ProvidersConfig, ProvidersConfigError> =>
  Effect.gen(function*() {
    if (document === null || document === undefined) {
      const at = locate?.([])
      return yield* new ProvidersConfigError({
        path: source,
        problems: [at === undefined ? emptyDocument : `${at}: ${emptyDocument}`]
      })
    }
    // `agents:` with nothing under it is no agents.
    const normalised = isRecord(document) && document.agents === null
      ? Object.fromEntries(Object.entries(document).filter(([key]) => key !== "agents"))
      : document
    const substituted = yield* substitute(normalised)
    const decoded = Schema.decodeUnknownEither(FileSchema, { errors: "all" })(substituted.value)
    const problems: Array<Problem> = [...substituted.problems]
    if (Either.isLeft(decoded)) {
      for (const issue of ParseResult.ArrayFormatter.formatIssueSync(decoded.left.issue)) {
        if (substituted.failed.some((path) => startsWith(issue.path, path))) continue
        problems.push(Render.shapeProblem(substituted.value, issue.path) ?? Render.fromSchemaIssue(issue))
      }
    }
    const checked = Checks.crossChecks(substituted.value, substituted.failed)
    problems.push(...checked.problems)
    const checkProvider = options?.checkProvider
    if (checkProvider !== undefined) {
      for (const outline of checked.outlines) {
        for (const { field, message } of checkProvider(outline)) {
          problems.push({ path: ["providers", outline.id, field], message })
        }
      }
    }
    if (problems.length > 0 || Either.isLeft(decoded)) {
      const clean = Render.scrub(substituted.secrets)
      const rendered = problems.sort(Render.documentOrder(document)).map((p) => clean(Render.render(p, locate)))
      return yield* new ProvidersConfigError({ path: source, problems: Array.from(new Set(rendered)) })
    }
    return resolve(decoded.right, source)
  })

/**
 * Decodes a parsed document (a plain JavaScript value, as `yaml` or `JSON.parse` give it, or a
 * {@link Document} written in code): substitutes every `${VAR}` and `${VAR:-default}` (read through
 * the `ConfigProvider`, keys as `Redacted`), decodes it with {@link FileSchema}, infers missing
 * types, checks what spans fields and runs `options.checkProvider`. Fails with one
 * {@link ProvidersConfigError} listing every problem, in the order of the document.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const decode = (
  document: unknown,
  source: string = "<inline>",
  options?: DecodeOptions
): Effect.Effect<ProvidersConfig, ProvidersConfigError> => decodeLocated(document, source, undefined, options)

const yamlProblem = (source: string, error: YAML.YAMLError): string => {
  // The first line only: the rest is a code frame, which could show a key.
  const message = (error.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "")
  const at = error.linePos?.[0]
  return at === undefined ? `${source}: ${message}` : `${source}:${at.line}:${at.col}: ${message}`
}

/**
 * Parses YAML text (`source` names it in errors: a file path, or `"<inline>"`), then
 * {@link decode}s it. Every problem names its place in the text where the YAML node is known:
 * `examples/x.yaml:7:5: providers.claude_main.max_tokens: expected a positive integer, got "lots"`
 * (a syntax error: `examples/x.yaml:7:3: ...`).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const parse = (
  text: string,
  source: string = "<inline>",
  options?: DecodeOptions
): Effect.Effect<ProvidersConfig, ProvidersConfigError> =>
  Effect.suspend(() => {
    const lines = new YAML.LineCounter()
    const document = YAML.parseDocument(text, { merge: true, prettyErrors: true, uniqueKeys: true, lineCounter: lines })
    if (document.errors.length > 0) {
      return Effect.fail(
        new ProvidersConfigError({ path: source, problems: document.errors.map((e) => yamlProblem(source, e)) })
      )
    }
    let value: unknown
    try {
      value = document.toJS({ maxAliasCount: 100 })
    } catch (error) {
      return Effect.fail(
        new ProvidersConfigError({
          path: source,
          problems: [`${source}: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`]
        })
      )
    }
    return decodeLocated(value, source, Locate.locator(document, lines, source), options)
  })

/**
 * Reads a YAML file through `@effect/platform`'s `FileSystem` and {@link parse}s it.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const load = (
  path: string,
  options?: DecodeOptions
): Effect.Effect<ProvidersConfig, ProvidersConfigError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError((error) =>
        new ProvidersConfigError({
          path,
          problems: [
            error._tag === "SystemError" && error.reason === "NotFound"
              ? `${path}: cannot read the file: it does not exist`
              : `${path}: cannot read the file: ${error.message}`
          ]
        })
      )
    )
    return yield* parse(text, path, options)
  })
