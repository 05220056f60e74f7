/**
 * What a call returns: the `LLMResponse` of `complete`, the `StreamEvent`s of `stream`, and
 * `collect`, which folds a stream into the response `complete` would have returned.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LLM, Message, Response } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const reply = yield* Response.collect(LLM.stream({ messages: [Message.user("Hi")] }))
 *   yield* Effect.log(reply.content, reply.usage.outputTokens)
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Builder from "./internal/builder.js"
import type * as Message from "./Message.js"
import type * as Tool from "./Tool.js"
import type * as Usage from "./Usage.js"

/**
 * Why the model stopped.
 *
 * @since 0.1.0
 * @category Models
 */
export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter" | "other"

/**
 * The reply to a call.
 *
 * @since 0.1.0
 * @category Models
 */
export interface LLMResponse {
  /** All text of the reply, joined. */
  readonly content: string
  /** The reply's parts in order (text, thinking with its signature, tool calls): send them back
   * as `Message.assistant(response.parts)` to continue the conversation. */
  readonly parts: ReadonlyArray<Message.Part>
  readonly toolCalls: ReadonlyArray<Tool.ToolCall>
  /** All visible reasoning, joined; absent when the model did not think aloud. */
  readonly thinking?: string
  /** The model that answered, as the provider names it. */
  readonly model: string
  readonly finishReason: FinishReason
  /** The provider's own stop reason, verbatim (`end_turn`, `tool_use`, `stop`, ...). */
  readonly rawFinishReason?: string
  /** Zeros when `usageUnknown`. */
  readonly usage: Usage.Tokens
  /** Cost in USD; `undefined` when the model has no known price, or the usage is unknown. */
  readonly costUsd: number | undefined
  /** `true` when the provider reported no usage for the call (some compatible servers send none):
   * its tokens and cost are unknown, not zero (the tally counts it in `unmeteredCalls`). */
  readonly usageUnknown?: true
  readonly providerId: string
  readonly requestId?: string
  /**
   * The provider's rate-limit headers on this reply (`x-ratelimit-*`, `anthropic-ratelimit-*`),
   * verbatim, when it sent any (`RateLimit` tightens its limits by them).
   */
  readonly rateLimits?: Readonly<Record<string, string>>
}

/**
 * A piece of text.
 *
 * @since 0.1.0
 * @category Models
 */
export interface TextDelta {
  readonly _tag: "TextDelta"
  readonly text: string
}

/**
 * A piece of visible reasoning.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ThinkingDelta {
  readonly _tag: "ThinkingDelta"
  readonly thinking: string
}

/**
 * The signature that closes a Claude thinking block (send it back with the thinking).
 *
 * @since 0.1.0
 * @category Models
 */
export interface ThinkingSignature {
  readonly _tag: "ThinkingSignature"
  readonly signature: string
}

/**
 * An encrypted (`redacted_thinking`) block: send `data` back unchanged.
 *
 * @since 0.1.0
 * @category Models
 */
export interface RedactedThinking {
  readonly _tag: "RedactedThinking"
  readonly data: string
}

/**
 * A tool call begins.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ToolCallStart {
  readonly _tag: "ToolCallStart"
  readonly id: string
  readonly name: string
}

/**
 * A fragment of a tool call's JSON arguments, as the provider streamed it.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ToolCallDelta {
  readonly _tag: "ToolCallDelta"
  readonly id: string
  readonly argumentsDelta: string
}

/**
 * A complete tool call, its input parsed.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ToolCall extends Tool.ToolCall {
  readonly _tag: "ToolCall"
}

/**
 * The end of the reply, with its usage and cost. Always the last event of a stream that succeeds.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Finish {
  readonly _tag: "Finish"
  readonly finishReason: FinishReason
  readonly rawFinishReason?: string
  /** Zeros when `usageUnknown`. */
  readonly usage: Usage.Tokens
  readonly costUsd: number | undefined
  /** `true` when the provider reported no usage (see `LLMResponse.usageUnknown`). */
  readonly usageUnknown?: true
  readonly model: string
  readonly providerId: string
  readonly requestId?: string
  /**
   * The provider's rate-limit headers on this reply (`x-ratelimit-*`, `anthropic-ratelimit-*`),
   * verbatim, when it sent any (`RateLimit` tightens its limits by them).
   */
  readonly rateLimits?: Readonly<Record<string, string>>
}

/**
 * What `stream` emits.
 *
 * @since 0.1.0
 * @category Models
 */
export type StreamEvent =
  | TextDelta
  | ThinkingDelta
  | ThinkingSignature
  | RedactedThinking
  | ToolCallStart
  | ToolCallDelta
  | ToolCall
  | Finish

/**
 * Folds a stream into the `LLMResponse` that `complete` returns for the same reply.
 * Fails with the stream's error; a stream that ends without its `Finish` never reaches here
 * (providers fail it with `ConnectionError`).
 *
 * @since 0.1.0
 * @category Combinators
 */
export const collect = <E, R>(stream: Stream.Stream<StreamEvent, E, R>): Effect.Effect<LLMResponse, E, R> =>
  Effect.suspend(() => {
    const builder = new Builder.ResponseBuilder()
    return Effect.as(
      Stream.runForEachChunk(stream, (chunk) => Effect.sync(() => builder.addAll(chunk))),
      builder
    ).pipe(Effect.map((b) => b.build()))
  })

/**
 * The text of a stream, piece by piece (drops every other event).
 *
 * @since 0.1.0
 * @category Combinators
 */
export const textDeltas = <E, R>(stream: Stream.Stream<StreamEvent, E, R>): Stream.Stream<string, E, R> =>
  Stream.filterMap(stream, (event) => event._tag === "TextDelta" ? Option.some(event.text) : Option.none())
