/**
 * The `LLM` service: one interface for every provider. Programs are written against it; a
 * provider layer (`Anthropic.layer`, `OpenAI.layer`, `LiteLLM.layer`, `MockLLM.layer`) supplies it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LLM, Message } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const reply = yield* LLM.complete({ messages: [Message.user("Say hi")], maxTokens: 64 })
 *   return reply.content
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Stream from "effect/Stream"
import type * as Capabilities from "./Capabilities.js"
import * as Pipeline from "./internal/pipeline.js"
import * as Provider from "./internal/provider.js"
import type * as LLMError from "./LLMError.js"
import type * as Message from "./Message.js"
import type * as Pricing from "./Pricing.js"
import type * as Response from "./Response.js"
import type * as Tokens from "./Tokens.js"
import type * as Tool from "./Tool.js"
import type * as Usage from "./Usage.js"

/**
 * The kinds of provider; `"custom"` is a provider built with `LLM.make` outside this package.
 *
 * @since 0.1.0
 * @category Models
 */
export type ProviderType = "anthropic" | "openai" | "litellm" | "mock" | "custom"

/**
 * Extended thinking (Claude: `budgetTokens`) or reasoning effort (OpenAI reasoning models: `effort`).
 *
 * @since 0.1.0
 * @category Models
 */
export type Thinking =
  | { readonly budgetTokens: number }
  | { readonly effort: "minimal" | "low" | "medium" | "high" }

/**
 * One call.
 *
 * @since 0.1.0
 * @category Models
 */
export interface CompletionRequest {
  readonly messages: ReadonlyArray<Message.LLMMessage>
  /** Defaults to the provider's `defaultModel`. */
  readonly model?: string
  readonly system?: string
  /** Defaults to the provider's `maxTokens`. */
  readonly maxTokens?: number
  readonly temperature?: number
  readonly topP?: number
  readonly stopSequences?: ReadonlyArray<string>
  readonly tools?: ReadonlyArray<Tool.ToolDefinition>
  readonly toolChoice?: Tool.ToolChoice
  readonly thinking?: Thinking
  /** `userId` (or `user_id`) is sent as Anthropic `metadata.user_id` and OpenAI `user`; other keys are not sent. */
  readonly metadata?: Readonly<Record<string, string>>
}

// -----------------------------------------------------------------------------
// Publishing the pipeline: LLM.make and LLM.Driver, for provider authors
// -----------------------------------------------------------------------------

/**
 * A request as a driver receives it: the provider's defaults applied (`model`, `maxTokens`).
 *
 * @since 0.1.0
 * @category Models
 */
export interface ResolvedRequest extends CompletionRequest {
  readonly model: string
  readonly maxTokens: number
}

/**
 * Handed to a driver with each request: call it whenever the provider reports usage before the
 * end of the reply (an Anthropic `message_start`, an OpenAI usage chunk). If the call then breaks,
 * the last usage reported is what the call is billed; with nothing reported, its usage is unknown.
 *
 * @since 0.1.0
 * @category Models
 */
export type ReportUsage = (usage: Usage.Tokens) => void

/**
 * The end of a reply as a driver reports it, before pricing (see {@link finish}).
 *
 * @since 0.1.0
 * @category Models
 */
export interface FinishOptions {
  readonly finishReason: Response.FinishReason
  /** The provider's own word for it (`"end_turn"`, `"stop"`). */
  readonly rawFinishReason?: string | undefined
  /** `undefined` when the provider reported none: unknown, not zero. */
  readonly usage: Usage.Tokens | undefined
  /** The model that answered (`""` when unknown: the requested model is priced). */
  readonly model: string
  readonly requestId?: string | undefined
  /** A cost the provider itself reported (a gateway); wins over the price table. */
  readonly costUsd?: number | undefined
}

/**
 * What a provider plugs into {@link make}: how to send a request, and how its reply maps to
 * `StreamEvent`s. Nothing else: defaults, validation, pricing, the usage tally, spans, metrics and
 * logs are `make`'s.
 *
 * The rules a driver follows: a reply ends with one `Finish` event ({@link finish}); `make` ends
 * the reply there (it drops what follows, stops reading a stream, and fails a reply without one
 * with `MalformedResponseError`). Failures are `LLMError`s (a network failure a `ConnectionError`, a
 * silence a `TimeoutError`, ...), never defects. Interruption must abort the request.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Driver {
  /** The registry id, e.g. `"bedrock_main"`. */
  readonly providerId: string
  readonly providerType: ProviderType
  /** The model of requests that name none. */
  readonly defaultModel: string
  /** The `maxTokens` of requests that set none. */
  readonly defaultMaxTokens: number
  readonly capabilities: (model: string) => Capabilities.Capabilities
  /** Price overrides, looked up before the built-in table. */
  readonly pricing?: Pricing.PriceTable | undefined
  /**
   * A local check of a request before it is sent: an error here is returned to the caller, no
   * request is sent, and the call is counted in no usage (only in the refusals metric).
   */
  readonly validate?: ((request: ResolvedRequest) => LLMError.LLMError | undefined) | undefined
  /** Sends a request for a complete reply: its events, in order, with its `Finish`. */
  readonly send: (
    request: ResolvedRequest,
    report: ReportUsage
  ) => Effect.Effect<ReadonlyArray<Response.StreamEvent>, LLMError.LLMError>
  /** Sends a request for a streamed reply: its events, ending with its `Finish`. */
  readonly sendStream: (
    request: ResolvedRequest,
    report: ReportUsage
  ) => Stream.Stream<Response.StreamEvent, LLMError.LLMError>
  /**
   * The provider's own exact count of a request's prompt tokens (a count endpoint, such as
   * Anthropic's `count_tokens`). Without it, every count is local (`"tokenizer"` or `"estimate"`).
   */
  readonly countTokens?: ((request: ResolvedRequest) => Effect.Effect<number, LLMError.LLMError>) | undefined
  /**
   * When a request's prompt plus its `maxTokens` would not fit the model's context window, lower
   * `maxTokens` to what fits instead of refusing the request with `ContextLengthError`. Default `false`.
   */
  readonly clampMaxTokens?: boolean | undefined
}

/**
 * Builds the `Finish` event that ends a reply, for a driver. Leave `costUsd` out unless the
 * provider reported one: {@link make} prices the reply from `Pricing` and sets the `providerId`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const finish = (options: FinishOptions): Response.Finish => Provider.finishEvent("", options)

/**
 * Builds an `LLM` service from a driver: the seam every provider plugs into (the built-in ones,
 * `MockLLM`, and yours). The driver only sends; `make` applies the defaults, runs the local
 * checks (a request that cannot be sent as JSON, the driver's `validate`), ends each reply at its
 * `Finish`, prices it, records every call that reaches the provider exactly once in the usage
 * tally (interrupted, failed and cut calls included, with the usage reported before they broke),
 * and writes its span, metrics and logs.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Capabilities, LLM, Message, Usage } from "@orchestify/providers"
 * import type { Response } from "@orchestify/providers"
 *
 * // A provider that echoes the last user message.
 * const reply = (request: LLM.ResolvedRequest): ReadonlyArray<Response.StreamEvent> => {
 *   const last = request.messages[request.messages.length - 1]
 *   const text = last?.content.map((part) => (part._tag === "Text" ? part.text : "")).join("") ?? ""
 *   return [
 *     { _tag: "TextDelta", text },
 *     LLM.finish({ finishReason: "stop", usage: Usage.tokens({ inputTokens: 1, outputTokens: 1 }), model: request.model })
 *   ]
 * }
 *
 * const Echo = LLM.make({
 *   providerId: "echo",
 *   providerType: "custom",
 *   defaultModel: "echo-1",
 *   defaultMaxTokens: 256,
 *   capabilities: Capabilities.forModel,
 *   send: (request) => Effect.succeed(reply(request)),
 *   sendStream: (request) => Stream.fromIterable(reply(request))
 * })
 *
 * const program = Effect.gen(function*() {
 *   const llm = yield* Echo
 *   const answer = yield* llm.complete({ messages: [Message.user("Hello")] })
 *   return answer.content // "Hello"
 * })
 * ```
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (driver: Driver) => Effect.Effect<Service> = Pipeline.make

// -----------------------------------------------------------------------------
// (end of the pipeline block)
// -----------------------------------------------------------------------------

/**
 * What every provider offers.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /** The registry id, e.g. `"claude_main"`; defaults to the provider type. */
  readonly providerId: string
  readonly providerType: ProviderType
  readonly defaultModel: string
  readonly capabilities: (model?: string) => Capabilities.Capabilities
  readonly complete: (request: CompletionRequest) => Effect.Effect<Response.LLMResponse, LLMError.LLMError>
  readonly stream: (request: CompletionRequest) => Stream.Stream<Response.StreamEvent, LLMError.LLMError>
  /**
   * The prompt tokens of a request (system prompt, messages, tools, framing), sending nothing by
   * default; `{ method: "provider" }` asks the provider's count endpoint where it has one.
   */
  readonly countTokens: (
    request: CompletionRequest,
    options?: Tokens.CountOptions
  ) => Effect.Effect<Tokens.TokenCount, LLMError.LLMError>
  /** The most a request can cost: its prompt, its output cap and their price (see `Tokens.forecast`). */
  readonly forecast: (
    request: CompletionRequest,
    options?: Tokens.CountOptions
  ) => Effect.Effect<Tokens.Forecast, LLMError.LLMError>
  /** What this provider has spent so far. */
  readonly usage: Effect.Effect<Usage.TokenUsage>
  readonly resetUsage: Effect.Effect<void>
}

/**
 * The `LLM` service tag.
 *
 * @since 0.1.0
 * @category Tags
 */
export class LLM extends Context.Tag("@orchestify/providers/LLM")<LLM, Service>() {}

/**
 * Completes a request with the `LLM` in context.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const complete = (request: CompletionRequest): Effect.Effect<Response.LLMResponse, LLMError.LLMError, LLM> =>
  Effect.flatMap(LLM, (llm) => llm.complete(request))

/**
 * Streams a request with the `LLM` in context.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const stream = (request: CompletionRequest): Stream.Stream<Response.StreamEvent, LLMError.LLMError, LLM> =>
  Stream.unwrap(Effect.map(LLM, (llm) => llm.stream(request)))

/**
 * The usage of the `LLM` in context.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const usage: Effect.Effect<Usage.TokenUsage, never, LLM> = Effect.flatMap(LLM, (llm) => llm.usage)

// -----------------------------------------------------------------------------
// Guards
// -----------------------------------------------------------------------------

/**
 * Whether a value is an `LLM` service: a `providerId` string, `complete` and `stream` functions
 * and a `usage` effect. Dual combinators (`Resilience.withRetry`, `Budget.guard`, ...) use it to
 * tell a service from their options.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LLM } from "@orchestify/providers"
 *
 * const describe = (u: unknown): string => LLM.isLLM(u) ? `${u.providerType} ${u.defaultModel}` : "not an LLM"
 *
 * describe(Effect.void) // "not an LLM"
 * ```
 *
 * @since 0.1.0
 * @category Guards
 */
export const isLLM = (u: unknown): u is Service =>
  Predicate.hasProperty(u, "providerId") && typeof u.providerId === "string" &&
  Predicate.hasProperty(u, "complete") && Predicate.isFunction(u.complete) &&
  Predicate.hasProperty(u, "stream") && Predicate.isFunction(u.stream) &&
  Predicate.hasProperty(u, "usage") && Effect.isEffect(u.usage)
