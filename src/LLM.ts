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
import type * as LLMError from "./LLMError.js"
import type * as Message from "./Message.js"
import type * as Response from "./Response.js"
import type * as Tool from "./Tool.js"
import type * as Usage from "./Usage.js"

/**
 * The kinds of provider.
 *
 * @since 0.1.0
 * @category Models
 */
export type ProviderType = "anthropic" | "openai" | "litellm" | "mock"

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
