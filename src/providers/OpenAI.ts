/**
 * The OpenAI provider: Chat Completions through the official `openai` SDK (6.x).
 *
 * The SDK builds and sends the request and classifies HTTP errors (built with `maxRetries: 0`:
 * retrying is yours, with `Resilience`); the streamed body is decoded by the shared SSE decoder,
 * one batch of events per network read, which is faster than the SDK's own decoder. Any
 * `baseUrl` works (proxies, OpenAI-compatible servers); interrupting the fiber aborts the request.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { LLM, Message, OpenAI } from "@orchestify/providers"
 *
 * const program = LLM.complete({ messages: [Message.user("Hello")] })
 *
 * program.pipe(Effect.provide(OpenAI.layer({ apiKey: Redacted.make("sk-..."), defaultModel: "gpt-4o" })))
 * ```
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import OpenAIClient from "openai"
import * as Capabilities from "../Capabilities.js"
import type * as Errors from "../internal/errors.js"
import * as Headers from "../internal/headers.js"
import * as Chat from "../internal/openaiChat.js"
import * as Pool from "../internal/pool.js"
import type * as Provider from "../internal/provider.js"
import * as Sdk from "../internal/sdk.js"
import * as Watchdog from "../internal/watchdog.js"
import * as LLM from "../LLM.js"
import type * as LLMError from "../LLMError.js"
import type * as Pricing from "../Pricing.js"
import type * as Response from "../Response.js"

/**
 * Options of the OpenAI provider.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  readonly apiKey: Redacted.Redacted<string>
  /** Default `"gpt-4o"`. */
  readonly defaultModel?: string | undefined
  /** Default `max_completion_tokens` when a request sets none. Default 4096. */
  readonly maxTokens?: number | undefined
  /** The `.../v1` URL, as the SDK takes it (default `https://api.openai.com/v1`). */
  readonly baseUrl?: string | undefined
  /** Wait for the reply's headers, and at most this long between two reads of its body. Default 10 minutes. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The registry id. Default `"openai"`. */
  readonly providerId?: string | undefined
  readonly organization?: string | undefined
  readonly project?: string | undefined
  /** Price overrides, looked up before the built-in table. */
  readonly pricing?: Pricing.PriceTable | undefined
  /**
   * Extra headers sent with every request; a value may be `Redacted`. No value ever appears in an
   * error, a span or a log line.
   */
  readonly headers?: Readonly<Record<string, string | Redacted.Redacted<string>>> | undefined
  /**
   * When a request's prompt plus its `maxTokens` would not fit the model's context window (counted
   * locally: the tokenizer for OpenAI models, else an estimate), lower `maxTokens` to what fits
   * instead of refusing it with `ContextLengthError`. Default `false`.
   */
  readonly clampMaxTokens?: boolean | undefined
}

/**
 * The SDK keeps only the `error` member of an error body, so the body of a gateway or server that
 * answers `{ "message": ... }`, `{ "detail": ... }` or plain text was lost ("400 status code (no
 * body)"). This client hands the whole body on to the error mapping.
 */
class Client extends OpenAIClient {
  protected override makeStatusError(
    status: number,
    error: object | undefined,
    message: string | undefined,
    headers: Headers
  ) {
    const body: unknown = error ?? message
    const record = typeof body === "object" && body !== null ? body as Record<string, unknown> : undefined
    const kept = record !== undefined && typeof record.error === "object" && record.error !== null
      ? record
      : { error: record ?? (typeof body === "string" && body.trim() !== "" ? { message: body.trim() } : {}) }
    return super.makeStatusError(status, kept, undefined, headers)
  }
}

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
 * What `OpenAI.OpenAI` holds: the provider's `LLM` service itself (the same object `LLM.LLM` gets),
 * plus the SDK client the provider sends with (built with `maxRetries: 0`,
 * the provider's `timeout`, key, base URL, organization, project and headers), for the OpenAI APIs
 * the `LLM` service does not cover (Responses, embeddings, files, ...), and the resolved options.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service extends LLM.Service {
  readonly client: OpenAIClient
  readonly options: ResolvedOptions
}

/**
 * The OpenAI provider's own tag, provided by `layer` and `layerConfig` beside `LLM.LLM` (as an
 * `@effect/sql` backend provides its own tag beside `SqlClient`).
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { OpenAI } from "@orchestify/providers"
 *
 * const models = Effect.gen(function*() {
 *   const { client } = yield* OpenAI.OpenAI
 *   return yield* Effect.promise(() => client.models.list())
 * }).pipe(Effect.provide(OpenAI.layer({ apiKey: Redacted.make("sk-...") })))
 * ```
 *
 * @since 0.1.0
 * @category Tags
 */
export class OpenAI extends Context.Tag("@orchestify/providers/OpenAI")<OpenAI, Service>() {}

const build = (options: Options): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const providerId = options.providerId ?? "openai"
    const timeout = Duration.decode(options.timeout ?? Duration.minutes(10))
    const ctx: Errors.ErrorContext = {
      provider: providerId,
      secrets: [options.apiKey, ...Headers.secrets(options.headers)],
      timeout,
      clock: yield* Effect.clock
    }
    const fetch = yield* Pool.scopedFetch
    const client = new Client({
      fetch,
      apiKey: Redacted.value(options.apiKey),
      maxRetries: 0,
      timeout: Sdk.sdkTimeoutMillis(timeout),
      // Explicit, so the SDK never reads OPENAI_BASE_URL, OPENAI_ORG_ID or OPENAI_PROJECT_ID from
      // process.env behind Effect's Config.
      baseURL: options.baseUrl ?? "https://api.openai.com/v1",
      organization: options.organization ?? null,
      project: options.project ?? null,
      ...(options.headers !== undefined ? { defaultHeaders: Headers.plain(options.headers) } : {})
    })
    const resolved: ResolvedOptions = {
      ...options,
      providerId,
      defaultModel: options.defaultModel ?? "gpt-4o",
      maxTokens: options.maxTokens ?? 4096,
      baseUrl: options.baseUrl ?? "https://api.openai.com/v1",
      timeout
    }
    const call: Sdk.Call = {
      ctx,
      watchdog: yield* Watchdog.make(timeout),
      requestIdHeaders: ["x-request-id", "request-id"]
    }
    const requestOptions = (signal: AbortSignal) => ({ signal, timeout: Sdk.sdkTimeoutMillis(timeout) })

    const stream = (request: Provider.ResolvedRequest, report: Provider.ReportUsage) =>
      Sdk.stream(
        call,
        (signal) =>
          client.chat.completions.create(Chat.toStreamBody(request, Chat.openaiDialect) as any, requestOptions(signal))
            .asResponse(),
        (requestId) => Chat.makeHandler(ctx, providerId, requestId, report)
      )

    const complete = (
      request: Provider.ResolvedRequest
    ): Effect.Effect<ReadonlyArray<Response.StreamEvent>, LLMError.LLMError> =>
      Sdk.complete(
        call,
        (signal) =>
          client.chat.completions.create(Chat.toBody(request, Chat.openaiDialect) as any, requestOptions(signal))
            .asResponse(),
        (data, requestId) => Chat.fromCompletion(ctx, data, requestId)
      )

    const llm = yield* LLM.make({
      providerId,
      providerType: "openai",
      defaultModel: resolved.defaultModel,
      defaultMaxTokens: resolved.maxTokens,
      capabilities: Capabilities.forModel,
      pricing: options.pricing,
      send: complete,
      sendStream: stream,
      clampMaxTokens: options.clampMaxTokens
    })
    return Sdk.providerService(llm, client, resolved) satisfies Service
  })

/**
 * Builds the OpenAI provider: an `LLM` service with its SDK `client` and resolved `options`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (options: Options) => Effect.Effect<Service, never, Scope.Scope> = build

const toContext = (service: Service): Context.Context<OpenAI | LLM.LLM> =>
  Context.make(OpenAI, service).pipe(Context.add(LLM.LLM, service))

/**
 * The OpenAI provider as a layer of `LLM` and of its own tag, `OpenAI.OpenAI` (one provider: the
 * `LLM` sends with that client).
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<OpenAI | LLM.LLM> =>
  Layer.scopedContext(Effect.map(build(options), toContext))

/**
 * The OpenAI provider with its options read from `Config` (by default the API key from
 * `OPENAI_API_KEY`), as a layer of `LLM` and `OpenAI.OpenAI`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options> = { apiKey: Config.redacted("OPENAI_API_KEY") }
): Layer.Layer<OpenAI | LLM.LLM, ConfigError.ConfigError> =>
  Layer.scopedContext(Effect.map(Effect.flatMap(Config.unwrap(config), build), toContext))
