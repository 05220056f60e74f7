/**
 * The Anthropic provider: Claude through the official `@anthropic-ai/sdk` (Messages API).
 *
 * The SDK builds and sends the request and classifies HTTP errors (it is built with
 * `maxRetries: 0`: retrying is yours, with `Resilience`); the streamed body is decoded by the
 * shared SSE decoder, one batch of events per network read. Interrupting the fiber aborts the
 * request and closes the socket.
 *
 * What the Messages API would reject with `thinking` is refused before any request with an
 * `InvalidRequestError` naming the field: `{ effort }` with `maxTokens <= 1024` (no budget of at
 * least 1024 fits below `max_tokens`), `{ budgetTokens }` below 1024 or not below `maxTokens`
 * (unless an `anthropic-beta: interleaved-thinking-...` header is set), `temperature` other than 1,
 * `topP` outside 0.95-1, and a `toolChoice` that forces tool use. An `{ effort }` budget is lowered
 * to `maxTokens - 1` when it would not fit.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { Anthropic, LLM, Message } from "@orchestify/providers"
 *
 * const program = LLM.complete({ messages: [Message.user("Hello")] })
 *
 * program.pipe(
 *   Effect.provide(Anthropic.layer({ apiKey: Redacted.make("sk-ant-..."), defaultModel: "claude-sonnet-4-6" }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import AnthropicClient from "@anthropic-ai/sdk"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Capabilities from "../Capabilities.js"
import * as Wire from "../internal/anthropicMessages.js"
import type * as Errors from "../internal/errors.js"
import * as Headers from "../internal/headers.js"
import * as Pool from "../internal/pool.js"
import type * as Provider from "../internal/provider.js"
import * as Sdk from "../internal/sdk.js"
import * as Watchdog from "../internal/watchdog.js"
import * as LLM from "../LLM.js"
import * as LLMError from "../LLMError.js"
import type * as Pricing from "../Pricing.js"
import type * as Response from "../Response.js"

/**
 * Options of the Anthropic provider.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  readonly apiKey: Redacted.Redacted<string>
  /** Default `"claude-sonnet-4-6"`. */
  readonly defaultModel?: string | undefined
  /** Default `max_tokens` when a request sets none. Default 4096. */
  readonly maxTokens?: number | undefined
  /** The host root, as the SDK takes it (default `https://api.anthropic.com`). */
  readonly baseUrl?: string | undefined
  /** Wait for the reply's headers, and at most this long between two reads of its body. Default 10 minutes. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The registry id. Default `"anthropic"`. */
  readonly providerId?: string | undefined
  /** Price overrides, looked up before the built-in table. */
  readonly pricing?: Pricing.PriceTable | undefined
  /**
   * Extra headers sent with every request (for example `anthropic-beta`); a value may be
   * `Redacted`. No value ever appears in an error, a span or a log line.
   */
  readonly headers?: Readonly<Record<string, string | Redacted.Redacted<string>>> | undefined
  /**
   * When a request's prompt plus its `maxTokens` would not fit the model's context window, lower
   * `maxTokens` to what fits instead of refusing it with `ContextLengthError`. Default `false`.
   */
  readonly clampMaxTokens?: boolean | undefined
}

/**
 * Above this `max_tokens` a non-streaming call could run past 10 minutes (the SDK refuses such
 * calls when it picks the timeout itself, and idle connections that long get cut), so `complete`
 * streams internally and folds the stream into the same response.
 *
 * @since 0.1.0
 * @category Models
 */
export const nonStreamingMaxTokens = 21_333

/**
 * The options of a built provider, with every default applied.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ResolvedOptions extends Options {
  readonly providerId: string
  readonly defaultModel: string
  readonly maxTokens: number
  readonly baseUrl: string
  readonly timeout: Duration.Duration
}

/**
 * What `Anthropic.Anthropic` holds: the provider's `LLM` service itself (the same object `LLM.LLM` gets),
 * plus the SDK client the provider sends with (built with
 * `maxRetries: 0`, the provider's `timeout`, key, base URL and headers), for the Messages API
 * features the `LLM` service does not cover, and the resolved options.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service extends LLM.Service {
  readonly client: AnthropicClient
  readonly options: ResolvedOptions
}

/**
 * The Anthropic provider's own tag, provided by `layer` and `layerConfig` beside `LLM.LLM` (as an
 * `@effect/sql` backend provides its own tag beside `SqlClient`).
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { Anthropic } from "@orchestify/providers"
 *
 * const models = Effect.gen(function*() {
 *   const { client } = yield* Anthropic.Anthropic
 *   return yield* Effect.promise(() => client.models.list())
 * }).pipe(Effect.provide(Anthropic.layer({ apiKey: Redacted.make("sk-ant-...") })))
 * ```
 *
 * @since 0.1.0
 * @category Tags
 */
export class Anthropic extends Context.Tag("@orchestify/providers/Anthropic")<Anthropic, Service>() {}

const build = (options: Options): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const providerId = options.providerId ?? "anthropic"
    const timeout = Duration.decode(options.timeout ?? Duration.minutes(10))
    const ctx: Errors.ErrorContext = {
      provider: providerId,
      secrets: [options.apiKey, ...Headers.secrets(options.headers)],
      timeout,
      clock: yield* Effect.clock
    }
    const fetch = yield* Pool.scopedFetch
    const client = new AnthropicClient({
      fetch,
      apiKey: Redacted.value(options.apiKey),
      maxRetries: 0,
      timeout: Sdk.sdkTimeoutMillis(timeout),
      // Explicit, so the SDK never reads ANTHROPIC_BASE_URL from process.env behind Effect's Config.
      baseURL: options.baseUrl ?? "https://api.anthropic.com",
      ...(options.headers !== undefined ? { defaultHeaders: Headers.plain(options.headers) } : {})
    })
    const resolved: ResolvedOptions = {
      ...options,
      providerId,
      defaultModel: options.defaultModel ?? "claude-sonnet-4-6",
      maxTokens: options.maxTokens ?? 4096,
      baseUrl: options.baseUrl ?? "https://api.anthropic.com",
      timeout
    }
    // Interleaved thinking (a beta) lets the thinking budget exceed max_tokens.
    const interleaved = Object.entries(Headers.plain(options.headers) ?? {}).some(([name, value]) =>
      name.toLowerCase() === "anthropic-beta" && value.includes("interleaved-thinking")
    )
    const call: Sdk.Call = { ctx, watchdog: yield* Watchdog.make(timeout), requestIdHeaders: ["request-id"] }
    const requestOptions = (signal: AbortSignal) => ({ signal, timeout: Sdk.sdkTimeoutMillis(timeout) })

    const stream = (request: Provider.ResolvedRequest, report: Provider.ReportUsage) =>
      Sdk.stream(
        call,
        (signal) =>
          client.messages.create({ ...Wire.toParams(request), stream: true }, requestOptions(signal)).asResponse(),
        (requestId) => Wire.makeHandler(ctx, providerId, requestId, report)
      )

    const complete = (
      request: Provider.ResolvedRequest,
      report: Provider.ReportUsage
    ): Effect.Effect<ReadonlyArray<Response.StreamEvent>, LLMError.LLMError> =>
      request.maxTokens > nonStreamingMaxTokens
        ? Sdk.collect(stream(request, report))
        : Sdk.complete(
          call,
          (signal) =>
            client.messages.create({ ...Wire.toParams(request), stream: false }, requestOptions(signal)).asResponse(),
          (data, requestId) => Wire.fromMessage(ctx, data, requestId)
        )

    const llm = yield* LLM.make({
      providerId,
      providerType: "anthropic",
      defaultModel: resolved.defaultModel,
      defaultMaxTokens: resolved.maxTokens,
      capabilities: Capabilities.forModel,
      pricing: options.pricing,
      validate: (request) => {
        const problem = request.model.startsWith("claude-")
          ? Wire.thinkingProblem(request, interleaved)
          : `"${request.model}" is not a Claude model; the Anthropic provider serves claude-* models`
        return problem === undefined
          ? undefined
          : new LLMError.InvalidRequestError({ provider: providerId, message: `${providerId}: ${problem}` })
      },
      send: complete,
      sendStream: stream,
      // The Messages `count_tokens` endpoint: exact, free, and rate limited apart from messages.
      countTokens: (request) =>
        Sdk.count(
          call,
          (signal) => client.messages.countTokens(Wire.toCountParams(request), requestOptions(signal)).asResponse()
        ),
      clampMaxTokens: options.clampMaxTokens
    })
    return Sdk.providerService(llm, client, resolved) satisfies Service
  })

/**
 * Builds the Anthropic provider: an `LLM` service with its SDK `client` and resolved `options`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (options: Options) => Effect.Effect<Service, never, Scope.Scope> = build

const toContext = (service: Service): Context.Context<Anthropic | LLM.LLM> =>
  Context.make(Anthropic, service).pipe(Context.add(LLM.LLM, service))

/**
 * The Anthropic provider as a layer of `LLM` and of its own tag, `Anthropic.Anthropic` (one
 * provider: the `LLM` sends with that client).
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<Anthropic | LLM.LLM> =>
  Layer.scopedContext(Effect.map(build(options), toContext))

/**
 * The Anthropic provider with its options read from `Config` (by default the API key from
 * `ANTHROPIC_API_KEY`), as a layer of `LLM` and `Anthropic.Anthropic`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options> = { apiKey: Config.redacted("ANTHROPIC_API_KEY") }
): Layer.Layer<Anthropic | LLM.LLM, ConfigError.ConfigError> =>
  Layer.scopedContext(Effect.map(Effect.flatMap(Config.unwrap(config), build), toContext))
