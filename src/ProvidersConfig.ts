/**
 * The configuration of a `ProviderRegistry`: the Schema of the YAML file (providers and agents),
 * `${VAR}` substitution read through Effect's `ConfigProvider`, and `load` / `parse`, which report
 * every problem of a file at once, each naming where it is.
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
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as YAML from "yaml"
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
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
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

// -----------------------------------------------------------------------------
// Models
// -----------------------------------------------------------------------------

/**
 * The kinds of provider a config can name.
 *
 * @since 0.1.0
 * @category Models
 */
export type ProviderType = "anthropic" | "openai" | "litellm"

/**
 * Every {@link ProviderType}.
 *
 * @since 0.1.0
 * @category Models
 */
export const providerTypes: ReadonlyArray<ProviderType> = ["anthropic", "openai", "litellm"]

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
}

// -----------------------------------------------------------------------------
// Schema
// -----------------------------------------------------------------------------

const describe = (u: unknown): string => {
  if (u === null || u === undefined) return "an empty value"
  if (Array.isArray(u)) return "a list"
  if (Redacted.isRedacted(u)) return "a secret"
  if (typeof u === "object") return "a mapping"
  if (typeof u === "string") return JSON.stringify(u.length > 80 ? `${u.slice(0, 77)}...` : u)
  return String(u)
}

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

const onOff = (input: unknown): boolean | undefined =>
  input === true || input === "true" ? true : input === false || input === "false" ? false : undefined

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

const resilienceKeys = ["retry", "request_timeout", "circuit_breaker", "fallbacks", "same_model"]

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
  baseUrl: optionalKey(Url, "base_url"),
  timeout: optional(TimeoutSchema),
  pricing: optional(Pricing.PriceTableSchema),
  organization: optional(NonEmptyString),
  project: optional(NonEmptyString),
  apiVersion: optionalKey(NonEmptyString, "api_version"),
  headers: optional(Headers),
  ...resilienceFields
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
  ...resilienceFields
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
  ))
}).annotations({ identifier: "ProvidersConfig", ...strict })

/**
 * The whole file once decoded.
 *
 * @since 0.1.0
 * @category Models
 */
export type FileSettings = Schema.Schema.Type<typeof FileSchema>

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
export const inferType = (model: string): Option.Option<ProviderType> => {
  if (model.includes("/")) return Option.some("litellm")
  if (model.startsWith("claude-")) return Option.some("anthropic")
  if (/^(gpt-|chatgpt-)/.test(model) || /^o[134](-|$)/.test(model)) return Option.some("openai")
  return Option.none()
}

// -----------------------------------------------------------------------------
// Problems
// -----------------------------------------------------------------------------

type Path = ReadonlyArray<PropertyKey>

interface Problem {
  readonly path: Path
  readonly message: string
}

const renderPath = (path: Path): string =>
  path.map((key, i) => typeof key === "number" ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`).join("")

const renderProblem = (problem: Problem): string =>
  problem.path.length === 0 ? problem.message : `${renderPath(problem.path)}: ${problem.message}`

const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u) && !Redacted.isRedacted(u)

/** `providers.<id>.api_key` and everything under `providers.<id>.headers`. */
const isSecretPath = (path: Path): boolean =>
  path[0] === "providers" && path.length >= 3 && (path[2] === "api_key" || path[2] === "headers")

const startsWith = (path: Path, prefix: Path): boolean =>
  prefix.length <= path.length && prefix.every((key, i) => path[i] === key)

const knownKeys = (path: Path): ReadonlyArray<string> | undefined => {
  switch (path.length) {
    case 1:
      return ["providers", "agents"]
    case 3:
      return path[0] === "providers"
        ? [
          "type",
          "api_key",
          "default_model",
          "max_tokens",
          "base_url",
          "timeout",
          "pricing",
          "organization",
          "project",
          "api_version",
          "headers",
          ...resilienceKeys
        ]
        : path[0] === "agents"
        ? ["provider", "model", "max_tokens", "temperature", "system", ...resilienceKeys]
        : undefined
    case 4:
      if (path[0] !== "providers" && path[0] !== "agents") return undefined
      switch (path[2]) {
        case "retry":
          return ["max_retries", "base_delay", "factor", "max_delay", "max_retry_after", "max_elapsed", "jitter"]
        case "request_timeout":
          return ["total", "first_event", "idle"]
        case "circuit_breaker":
          return ["failure_threshold", "reset_timeout", "failure_rate", "minimum_calls", "window"]
        default:
          return undefined
      }
    case 5:
      return path[0] === "providers" && path[2] === "pricing"
        ? ["input", "output", "cache_read", "cache_write", "cache_write_1h", "long_context"]
        : undefined
    case 6:
      return path[0] === "providers" && path[2] === "pricing" && path[4] === "long_context"
        ? ["threshold", "input", "output", "cache_read", "cache_write"]
        : undefined
    default:
      return undefined
  }
}

/** What a place under `pricing` takes, in words. */
const priceExpectation = (path: Path): string | undefined => {
  if (path[0] !== "providers" || path[2] !== "pricing") return undefined
  if (path.length === 3) return "a mapping of model names to prices"
  if (path.length === 4) return "a mapping with input and output prices (USD per million tokens)"
  if (path.length === 5 && path[4] === "long_context") return "a mapping with threshold, input and output"
  if (path[path.length - 1] === "threshold") return "a positive integer (prompt tokens)"
  return "a non-negative number (USD per million tokens)"
}

const fromSchemaIssue = (issue: ParseResult.ArrayFormatterIssue): Problem => {
  switch (issue._tag) {
    case "Unexpected": {
      const known = knownKeys(issue.path)
      return {
        path: issue.path,
        message: known === undefined ? "unknown field" : `unknown field; expected one of: ${known.join(", ")}`
      }
    }
    case "Missing":
      return { path: issue.path, message: "is required" }
    default: {
      // Messages this module did not write (the price table's) read `Expected X, actual Y`.
      const match = /^Expected (.*), actual (.*)$/s.exec(issue.message)
      if (match === null) return { path: issue.path, message: issue.message }
      return { path: issue.path, message: `expected ${priceExpectation(issue.path) ?? match[1]}, got ${match[2]}` }
    }
  }
}

const valueAt = (document: unknown, path: Path): unknown =>
  path.reduce<unknown>((node, key) => isRecord(node) ? node[String(key)] : undefined, document)

/** A place that should hold a mapping and does not. */
const shapeProblem = (document: unknown, path: Path): Problem | undefined => {
  const value = valueAt(document, path)
  if (isRecord(value)) return undefined
  const what = path.length === 0
    ? "a mapping with providers (and optionally agents)"
    : path.length === 2 && path[0] === "providers"
    ? "a mapping of provider settings"
    : path.length === 2 && path[0] === "agents"
    ? "a mapping of agent settings"
    : undefined
  return what === undefined ? undefined : { path, message: `expected ${what}, got ${describe(value)}` }
}

/** Orders problems as their places appear in the document; unknown places last. */
const documentOrder = (document: unknown) => {
  const rank = (path: Path): ReadonlyArray<number> => {
    const out: Array<number> = []
    let node: unknown = document
    for (const key of path) {
      if (Array.isArray(node) && typeof key === "number") {
        out.push(key)
        node = node[key]
        continue
      }
      if (!isRecord(node)) break
      const index = Object.keys(node).indexOf(String(key))
      out.push(index < 0 ? Number.MAX_SAFE_INTEGER : index)
      node = node[String(key)]
    }
    return out
  }
  return (a: Problem, b: Problem): number => {
    const ra = rank(a.path)
    const rb = rank(b.path)
    for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
      if (ra[i] !== rb[i]) return ra[i]! - rb[i]!
    }
    return ra.length - rb.length
  }
}

const scrub = (secrets: ReadonlyArray<string>) => (text: string): string =>
  secrets.reduce((out, secret) => secret.length >= 4 ? out.split(secret).join("<redacted>") : out, text)

// -----------------------------------------------------------------------------
// ${VAR} substitution
// -----------------------------------------------------------------------------

type Segment =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "Var"; readonly name: string; readonly fallback: string | undefined }

const variablePattern = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s

/** Splits `a ${B} c ${D:-d}` into text and variables; `$${` is a literal `${`. */
const segmentsOf = (text: string, secret: boolean): Either.Either<ReadonlyArray<Segment>, string> => {
  const segments: Array<Segment> = []
  let literal = ""
  let i = 0
  while (i < text.length) {
    if (text.startsWith("$${", i)) {
      literal += "${"
      i += 3
    } else if (text.startsWith("${", i)) {
      const end = text.indexOf("}", i + 2)
      if (end < 0) return Either.left("\"${\" without a closing \"}\"")
      const inner = text.slice(i + 2, end)
      const match = variablePattern.exec(inner)
      if (match === null) {
        // A secret's text is never repeated.
        const what = secret ? "" : `"\${${inner}}" `
        return Either.left(`${what}is not a valid variable reference; write \${NAME} or \${NAME:-default}`)
      }
      if (literal !== "") segments.push({ _tag: "Text", text: literal })
      literal = ""
      segments.push({ _tag: "Var", name: match[1]!, fallback: match[2] })
      i = end + 1
    } else {
      literal += text[i]
      i += 1
    }
  }
  if (literal !== "") segments.push({ _tag: "Text", text: literal })
  return Either.right(segments)
}

interface Substituted {
  readonly value: unknown
  readonly problems: ReadonlyArray<Problem>
  /** Places whose value could not be read: their Schema problems would only repeat it. */
  readonly failed: ReadonlyArray<Path>
  /** Secret values read, kept to scrub them from any problem text. */
  readonly secrets: ReadonlyArray<string>
}

const readVariable = (name: string, secret: boolean): Effect.Effect<Option.Option<string>> =>
  (secret ? Config.map(Config.redacted(name), Redacted.value) : Config.string(name)).pipe(
    Config.option,
    Effect.orElseSucceed(() => Option.none<string>())
  )

const substituteString = (
  text: string,
  path: Path,
  out: { problems: Array<Problem>; failed: Array<Path>; secrets: Array<string> }
): Effect.Effect<unknown> =>
  Effect.gen(function*() {
    const secret = isSecretPath(path)
    const parsed = segmentsOf(text, secret)
    if (Either.isLeft(parsed)) {
      out.problems.push({ path, message: parsed.left })
      out.failed.push(path)
      return text
    }
    let value = ""
    let ok = true
    for (const segment of parsed.right) {
      if (segment._tag === "Text") {
        value += segment.text
        continue
      }
      const read = yield* readVariable(segment.name, secret)
      if (Option.isSome(read) && read.value !== "") {
        value += read.value
      } else if (segment.fallback !== undefined) {
        value += segment.fallback
      } else if (Option.isSome(read) && !secret) {
        // set but empty: an empty string is a value
      } else {
        ok = false
        out.problems.push({
          path,
          message: `environment variable ${segment.name} is ${Option.isSome(read) ? "empty" : "not set"}`
        })
      }
    }
    if (!ok) {
      out.failed.push(path)
      return undefined
    }
    if (secret) {
      out.secrets.push(value)
      return Redacted.make(value)
    }
    return value
  })

const substitute = (document: unknown): Effect.Effect<Substituted> =>
  Effect.gen(function*() {
    const out = { problems: [] as Array<Problem>, failed: [] as Array<Path>, secrets: [] as Array<string> }
    const walk = (node: unknown, path: Path): Effect.Effect<unknown> => {
      if (typeof node === "string") return substituteString(node, path, out)
      if (Array.isArray(node)) return Effect.forEach(node, (item, i) => walk(item, [...path, i]))
      if (isRecord(node)) {
        return Effect.map(
          Effect.forEach(Object.entries(node), ([key, value]) =>
            Effect.map(walk(value, [...path, key]), (v) => [key, v])),
          (entries) =>
            Object.fromEntries(entries.filter(([, v]) => v !== undefined))
        )
      }
      return Effect.succeed(node)
    }
    const value = yield* walk(document, [])
    return { value, ...out }
  })

// -----------------------------------------------------------------------------
// Checks across fields
// -----------------------------------------------------------------------------

const article = (type: ProviderType): string => type === "litellm" ? "a litellm" : `an ${type}`

const crossChecks = (document: unknown, failed: ReadonlyArray<Path>): Array<Problem> => {
  if (!isRecord(document)) return []
  const problems: Array<Problem> = []
  const providers = isRecord(document.providers) ? document.providers : {}
  const types = new Map<string, ProviderType>()
  const hasFailed = (path: Path) => failed.some((f) => startsWith(path, f) || startsWith(f, path))

  if (isRecord(document.providers) && Object.keys(providers).length === 0) {
    problems.push({ path: ["providers"], message: "define at least one provider" })
  }

  for (const [id, raw] of Object.entries(providers)) {
    if (!isRecord(raw)) continue
    const at = (key: string): Path => ["providers", id, key]
    const model = typeof raw.default_model === "string" ? raw.default_model : undefined
    let type: ProviderType | undefined
    if (raw.type === undefined) {
      if (raw.default_model === undefined && !hasFailed(at("default_model"))) {
        problems.push({
          path: at("type"),
          message: "is required when default_model is not set; write anthropic, openai or litellm"
        })
      } else if (model !== undefined) {
        type = Option.getOrUndefined(inferType(model))
        if (type === undefined) {
          problems.push({
            path: at("type"),
            message: `cannot infer the provider type from default_model "${model}"; ` +
              "write type: anthropic, openai or litellm"
          })
        }
      }
    } else if (typeof raw.type === "string" && (providerTypes as ReadonlyArray<string>).includes(raw.type)) {
      type = raw.type as ProviderType
    }
    if (type === undefined) continue
    types.set(id, type)
    if (type !== "litellm" && raw.api_key === undefined && !hasFailed(at("api_key"))) {
      const variable = type === "anthropic" ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY"
      problems.push({
        path: at("api_key"),
        message: `is required for ${article(type)} provider (for example api_key: \${${variable}})`
      })
    }
    if (type === "anthropic" && model !== undefined && !model.startsWith("claude-")) {
      problems.push({
        path: at("default_model"),
        message: `"${model}" is not a Claude model; an anthropic provider serves claude-* models`
      })
    }
    if (type === "litellm" && raw.default_model === undefined && !hasFailed(at("default_model"))) {
      problems.push({
        path: at("default_model"),
        message: "is required for a litellm provider (for example azure/gpt-4o, ollama/llama3, groq/llama-3.3-70b)"
      })
    }
    if (type !== "openai") {
      for (const key of ["organization", "project"]) {
        if (raw[key] !== undefined) {
          problems.push({ path: at(key), message: `is not taken by ${article(type)} provider (openai only)` })
        }
      }
    }
    if (type !== "litellm" && raw.api_version !== undefined) {
      problems.push({ path: at("api_version"), message: `is not taken by ${article(type)} provider (litellm only)` })
    }
  }

  const agents = isRecord(document.agents) ? document.agents : {}
  const defined = Object.keys(providers)
  for (const [id, raw] of Object.entries(agents)) {
    if (!isRecord(raw) || typeof raw.provider !== "string" || raw.provider === "") continue
    if (!Object.hasOwn(providers, raw.provider)) {
      problems.push({
        path: ["agents", id, "provider"],
        message: `agent ${id} names provider "${raw.provider}", which is not defined; ` +
          (defined.length === 0 ? "no providers are defined" : `defined providers: ${defined.join(", ")}`)
      })
      continue
    }
    if (
      types.get(raw.provider) === "anthropic" && typeof raw.model === "string" && raw.model !== "" &&
      !raw.model.startsWith("claude-")
    ) {
      problems.push({
        path: ["agents", id, "model"],
        message: `"${raw.model}" is not a Claude model, and provider ${raw.provider} is an anthropic provider`
      })
    }
  }
  problems.push(...resilienceChecks(providers, agents))
  return problems
}

const definedProviders = (providers: Record<string, unknown>): string => {
  const defined = Object.keys(providers)
  return defined.length === 0 ? "no providers are defined" : `defined providers: ${defined.join(", ")}`
}

/**
 * The fallbacks of one provider or agent: each must be another defined provider, listed once.
 * Returns the problems and the valid targets.
 */
const checkFallbacks = (
  at: Path,
  list: unknown,
  providers: Record<string, unknown>,
  own: { readonly id: string; readonly message: string } | undefined
): { readonly problems: ReadonlyArray<Problem>; readonly targets: ReadonlyArray<string> } => {
  const problems: Array<Problem> = []
  const targets: Array<string> = []
  if (!Array.isArray(list)) return { problems, targets }
  const seen = new Set<string>()
  list.forEach((target: unknown, i) => {
    // Anything but a non-empty string is the Schema's to report.
    if (typeof target !== "string" || target === "") return
    const path = [...at, "fallbacks", i]
    if (own !== undefined && target === own.id) {
      problems.push({ path, message: own.message })
    } else if (!Object.hasOwn(providers, target)) {
      problems.push({
        path,
        message: `fallback provider "${target}" is not defined; ${definedProviders(providers)}`
      })
    } else if (seen.has(target)) {
      problems.push({ path, message: `"${target}" is listed twice` })
    } else {
      targets.push(target)
    }
    seen.add(target)
  })
  return { problems, targets }
}

/** The shortest way from `from` back to itself along `edges`, as the ids passed, or `undefined`. */
const cycleThrough = (from: string, edges: ReadonlyMap<string, ReadonlyArray<string>>): Array<string> | undefined => {
  const previous = new Map<string, string>()
  const queue: Array<string> = [from]
  while (queue.length > 0) {
    const node = queue.shift()!
    for (const next of edges.get(node) ?? []) {
      if (next === from) {
        const path = [node]
        while (path[0] !== from) path.unshift(previous.get(path[0]!)!)
        return [...path, from]
      }
      if (!previous.has(next)) {
        previous.set(next, node)
        queue.push(next)
      }
    }
  }
  return undefined
}

/** `retry`, `request_timeout`, `circuit_breaker`, `fallbacks` and `same_model` across fields. */
const resilienceChecks = (providers: Record<string, unknown>, agents: Record<string, unknown>): Array<Problem> => {
  const problems: Array<Problem> = []
  const emptyTimeout = (at: Path, raw: Record<string, unknown>) => {
    if (isRecord(raw.request_timeout) && Object.keys(raw.request_timeout).length === 0) {
      problems.push({ path: [...at, "request_timeout"], message: "set at least one of total, first_event, idle" })
    }
  }
  // Absent or empty; a value that is not a list is the Schema's to report.
  const noFallbacks = (list: unknown) => list === undefined || (Array.isArray(list) && list.length === 0)

  const edges = new Map<string, ReadonlyArray<string>>()
  for (const [id, raw] of Object.entries(providers)) {
    if (!isRecord(raw)) continue
    const at: Path = ["providers", id]
    emptyTimeout(at, raw)
    const checked = checkFallbacks(at, raw.fallbacks, providers, {
      id,
      message: `provider ${id} lists itself; a fallback must be another provider`
    })
    problems.push(...checked.problems)
    edges.set(id, checked.targets)
    if (onOff(raw.same_model) !== undefined && noFallbacks(raw.fallbacks)) {
      problems.push({ path: [...at, "same_model"], message: "has no effect without fallbacks" })
    }
  }

  // The shortest cycle through each provider, each cycle reported once, on its first provider in the file.
  const order = Array.from(edges.keys())
  const reported = new Set<string>()
  for (const id of order) {
    const cycle = cycleThrough(id, edges)
    if (cycle === undefined) continue
    const members = cycle.slice(0, -1)
    const first = members.reduce((a, b) => order.indexOf(a) <= order.indexOf(b) ? a : b)
    const start = members.indexOf(first)
    const canonical = [...members.slice(start), ...members.slice(0, start)].join(" -> ")
    if (reported.has(canonical)) continue
    reported.add(canonical)
    problems.push({
      path: ["providers", id, "fallbacks"],
      message: `the fallbacks form a cycle: ${cycle.join(" -> ")}`
    })
  }

  for (const [id, raw] of Object.entries(agents)) {
    if (!isRecord(raw)) continue
    const at: Path = ["agents", id]
    emptyTimeout(at, raw)
    const provider = typeof raw.provider === "string" && raw.provider !== "" ? raw.provider : undefined
    problems.push(
      ...checkFallbacks(
        at,
        raw.fallbacks,
        providers,
        provider === undefined
          ? undefined
          : { id: provider, message: `"${provider}" is the agent's own provider; a fallback must be another provider` }
      ).problems
    )
    if (onOff(raw.same_model) !== undefined) {
      const own = provider !== undefined && isRecord(providers[provider]) ? providers[provider] : undefined
      if (noFallbacks(raw.fallbacks !== undefined ? raw.fallbacks : own?.fallbacks)) {
        problems.push({
          path: [...at, "same_model"],
          message: provider === undefined
            ? "has no effect without fallbacks"
            : `has no effect without fallbacks (the agent's own, or its provider ${provider}'s)`
        })
      }
    }
  }
  return problems
}

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
  return { source, providers, agents }
}

/**
 * Decodes a parsed document (a plain JavaScript value, as `yaml` or `JSON.parse` give it):
 * substitutes every `${VAR}` and `${VAR:-default}` (read through the `ConfigProvider`, keys as
 * `Redacted`), decodes it with {@link FileSchema}, infers missing types and checks what spans
 * fields. Fails with one {@link ConfigError} listing every problem, in the order of the document.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const decode = (document: unknown, source: string = "<inline>"): Effect.Effect<ProvidersConfig, ConfigError> =>
  Effect.gen(function*() {
    if (document === null || document === undefined) {
      return yield* new ConfigError({
        path: source,
        problems: ["the configuration is empty; expected a mapping with providers (and optionally agents)"]
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
        problems.push(shapeProblem(substituted.value, issue.path) ?? fromSchemaIssue(issue))
      }
    }
    problems.push(...crossChecks(substituted.value, substituted.failed))
    if (problems.length > 0 || Either.isLeft(decoded)) {
      const clean = scrub(substituted.secrets)
      const rendered = problems.sort(documentOrder(document)).map((p) => clean(renderProblem(p)))
      return yield* new ConfigError({ path: source, problems: Array.from(new Set(rendered)) })
    }
    return resolve(decoded.right, source)
  })

const yamlProblem = (source: string, error: YAML.YAMLError): string => {
  // The first line only: the rest is a code frame, which could show a key.
  const message = (error.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "")
  const at = error.linePos?.[0]
  return at === undefined ? `${source}: ${message}` : `${source}:${at.line}:${at.col}: ${message}`
}

/**
 * Parses YAML text (`source` names it in errors: a file path, or `"<inline>"`), then
 * {@link decode}s it. A syntax error names the place: `examples/x.yaml:7:3: ...`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const parse = (text: string, source: string = "<inline>"): Effect.Effect<ProvidersConfig, ConfigError> =>
  Effect.suspend(() => {
    const document = YAML.parseDocument(text, { merge: true, prettyErrors: true, uniqueKeys: true })
    if (document.errors.length > 0) {
      return Effect.fail(
        new ConfigError({ path: source, problems: document.errors.map((e) => yamlProblem(source, e)) })
      )
    }
    let value: unknown
    try {
      value = document.toJS({ maxAliasCount: 100 })
    } catch (error) {
      return Effect.fail(
        new ConfigError({
          path: source,
          problems: [`${source}: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`]
        })
      )
    }
    return decode(value, source)
  })

/**
 * Reads a YAML file through `@effect/platform`'s `FileSystem` and {@link parse}s it.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const load = (path: string): Effect.Effect<ProvidersConfig, ConfigError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError((error) =>
        new ConfigError({
          path,
          problems: [
            error._tag === "SystemError" && error.reason === "NotFound"
              ? `${path}: cannot read the file: it does not exist`
              : `${path}: cannot read the file: ${error.message}`
          ]
        })
      )
    )
    return yield* parse(text, path)
  })
