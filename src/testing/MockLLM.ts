/**
 * A scripted `LLM` for dependency-injected tests: give it the replies, errors and streamed chunks
 * your code should see, run the code against `MockLLM.layer(script)`, then assert on the requests
 * it received.
 *
 * Replies go through the same shared call path as the real providers (the mock is a driver of
 * `LLM.make`, like them): `complete` returns exactly
 * what `Response.collect` of `stream` folds for the same reply, usage is tallied per call (a model
 * with a known price, such as `"claude-sonnet-4-5"`, is costed; `"mock-model"` counts as unpriced),
 * and a failed call counts as a failure.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LLM, LLMError, Message } from "@orchestify/providers"
 * import { MockLLM } from "@orchestify/providers/testing"
 *
 * const program = Effect.gen(function*() {
 *   const reply = yield* LLM.complete({ messages: [Message.user("Weather in Paris?")] })
 *   const requests = yield* MockLLM.requests
 *   return [reply.toolCalls, requests.length] as const
 * })
 *
 * program.pipe(
 *   Effect.provide(MockLLM.layer([
 *     MockLLM.fail(new LLMError.ProviderUnavailableError({ provider: "mock", message: "overloaded" })),
 *     MockLLM.toolCall("get_weather", { city: "Paris" }, { usage: { inputTokens: 12, outputTokens: 8 } }),
 *     MockLLM.text("It is sunny.", { model: "claude-sonnet-4-5" })
 *   ]))
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as Capabilities from "../Capabilities.js"
import * as LLM from "../LLM.js"
import * as LLMError from "../LLMError.js"
import type * as Pricing from "../Pricing.js"
import type * as Response from "../Response.js"
import * as Usage from "../Usage.js"

/**
 * A streamed event that is not the end of the reply: the end (`Finish`) is built by the mock from
 * the reply's usage, model and finish reason.
 *
 * @since 0.1.0
 * @category Models
 */
export type Content = Exclude<Response.StreamEvent, Response.Finish>

/**
 * A piece of a streamed reply: a string is a `TextDelta`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Piece = string | Content

/**
 * How a scripted reply ends. `model` defaults to the request's model (or the mock's
 * `defaultModel`); `usage` to no tokens; `costUsd`, when set, is taken as the cost the provider
 * reported (as a gateway does) instead of the price table's.
 *
 * @since 0.1.0
 * @category Models
 */
export interface FinishSpec {
  readonly finishReason: Response.FinishReason
  readonly rawFinishReason?: string | undefined
  readonly usage?: Usage.Tokens | undefined
  readonly model?: string | undefined
  readonly requestId?: string | undefined
  readonly costUsd?: number | undefined
}

/**
 * A reply that streams its events, then ends with its `Finish` or, when `failWith` is set, fails
 * with that error after the events.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Respond {
  readonly _tag: "Respond"
  readonly events: ReadonlyArray<Content>
  readonly finish: FinishSpec
  readonly failWith: LLMError.LLMError | undefined
}

/**
 * A reply that fails the call (a stream fails before any event).
 *
 * @since 0.1.0
 * @category Models
 */
export interface Fail {
  readonly _tag: "Fail"
  readonly error: LLMError.LLMError
}

/**
 * One scripted answer to one call.
 *
 * @since 0.1.0
 * @category Models
 */
export type Reply = Respond | Fail

/**
 * The replies, in the order of the calls, or a function choosing the reply for a request
 * (`index` counts calls from 0).
 *
 * @since 0.1.0
 * @category Models
 */
export type Script =
  | ReadonlyArray<Reply>
  | ((request: LLM.CompletionRequest, index: number) => Reply)

/**
 * A tool call of a scripted reply; `id` defaults to `call_1`, `call_2`, ... in reply order.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ToolCallInput {
  readonly id?: string | undefined
  readonly name: string
  readonly input: unknown
}

/**
 * Everything a complete scripted reply can hold. Events are streamed in this order: thinking,
 * its signature, text, tool calls (each as `ToolCallStart`, one `ToolCallDelta` with the JSON
 * input, `ToolCall`), then `Finish`. `finishReason` defaults to `"tool_calls"` when there are tool
 * calls, else `"stop"`.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ReplyOptions {
  readonly text?: string | undefined
  readonly thinking?: string | undefined
  /** The signature closing the thinking block (Claude). */
  readonly thinkingSignature?: string | undefined
  readonly toolCalls?: ReadonlyArray<ToolCallInput> | undefined
  /** Missing fields are zero. */
  readonly usage?: Partial<Usage.Tokens> | undefined
  /** The model that answered; defaults to the request's model. */
  readonly model?: string | undefined
  readonly finishReason?: Response.FinishReason | undefined
  readonly rawFinishReason?: string | undefined
  readonly requestId?: string | undefined
  /** A cost reported by the provider itself; wins over the price table. */
  readonly costUsd?: number | undefined
}

/**
 * Options of {@link chunks}: how the reply ends. With `failWith`, the stream fails with it after
 * the chunks (and `complete` fails with it); `usage`, if given, is then what the provider reported
 * before it broke.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ChunksOptions {
  readonly failWith?: LLMError.LLMError | undefined
  /** Missing fields are zero. */
  readonly usage?: Partial<Usage.Tokens> | undefined
  readonly model?: string | undefined
  /** Defaults to `"tool_calls"` when a `ToolCall` is among the pieces, else `"stop"`. */
  readonly finishReason?: Response.FinishReason | undefined
  readonly rawFinishReason?: string | undefined
  readonly requestId?: string | undefined
  readonly costUsd?: number | undefined
}

/**
 * Options of the mock.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** The registry id. Default `"mock"`. */
  readonly providerId?: string | undefined
  /** The model of requests that name none. Default `"mock-model"` (which has no price). */
  readonly defaultModel?: string | undefined
  /** Waited (on Effect's `Clock`, so `TestClock` controls it) before each reply. */
  readonly latency?: Duration.DurationInput | undefined
  /** Price overrides, looked up before the built-in table. */
  readonly pricing?: Pricing.PriceTable | undefined
  /**
   * The provider's own count, as `countTokens` with `{ method: "provider" }` and the context-fit
   * guard see it (an Anthropic-like exact count): a number for every request, or one per request.
   * Without it every count is local (the tokenizer for OpenAI model names, else the estimate).
   */
  readonly countTokens?: number | ((request: LLM.ResolvedRequest) => number) | undefined
  /** Lower `maxTokens` to fit the model's context window instead of refusing the request. Default `false`. */
  readonly clampMaxTokens?: boolean | undefined
}

/**
 * The mock's own service: the `LLM` it provides, plus what it received.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service extends LLM.Service {
  /** Every request received, in order, as the caller sent it (scripted or not). */
  readonly requests: Effect.Effect<ReadonlyArray<LLM.CompletionRequest>>
  /** Replies left in a list script; `Infinity` for a function script. */
  readonly remaining: Effect.Effect<number>
}

/**
 * The mock's tag, for assertions on what it received.
 *
 * @since 0.1.0
 * @category Tags
 */
export class MockLLM extends Context.Tag("@orchestify/providers/testing/MockLLM")<MockLLM, Service>() {}

/** The reply chosen for the current call, handed from the service to the driver. */
class CurrentReply extends Context.Tag("@orchestify/providers/testing/MockLLM/CurrentReply")<CurrentReply, Reply>() {}

const tokensOf = (usage: Partial<Usage.Tokens> | undefined): Usage.Tokens | undefined =>
  usage === undefined ? undefined : Usage.tokens(usage)

/**
 * A complete reply.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const reply = (options: ReplyOptions): Reply => {
  const events: Array<Content> = []
  if (options.thinking !== undefined && options.thinking.length > 0) {
    events.push({ _tag: "ThinkingDelta", thinking: options.thinking })
  }
  if (options.thinkingSignature !== undefined) {
    events.push({ _tag: "ThinkingSignature", signature: options.thinkingSignature })
  }
  if (options.text !== undefined && options.text.length > 0) events.push({ _tag: "TextDelta", text: options.text })
  const toolCalls = options.toolCalls ?? []
  toolCalls.forEach((call, i) => {
    const id = call.id ?? `call_${i + 1}`
    events.push({ _tag: "ToolCallStart", id, name: call.name })
    events.push({ _tag: "ToolCallDelta", id, argumentsDelta: JSON.stringify(call.input ?? {}) })
    events.push({ _tag: "ToolCall", id, name: call.name, input: call.input })
  })
  return {
    _tag: "Respond",
    events,
    finish: {
      finishReason: options.finishReason ?? (toolCalls.length > 0 ? "tool_calls" : "stop"),
      rawFinishReason: options.rawFinishReason,
      usage: tokensOf(options.usage),
      model: options.model,
      requestId: options.requestId,
      costUsd: options.costUsd
    },
    failWith: undefined
  }
}

/**
 * A text reply (options may add thinking, tool calls, usage, model, finish reason).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const text = (text: string, options?: Omit<ReplyOptions, "text">): Reply => reply({ ...options, text })

/**
 * A reply calling one tool (options may add text before it, an `id`, usage, model).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const toolCall = (
  name: string,
  input: unknown,
  options?: Omit<ReplyOptions, "toolCalls"> & { readonly id?: string | undefined }
): Reply => {
  const { id, ...rest } = options ?? {}
  return reply({ ...rest, toolCalls: [{ id, name, input }] })
}

/**
 * A reply that fails the call with a typed error (a stream fails before any event).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const fail = (error: LLMError.LLMError): Reply => ({ _tag: "Fail", error })

/**
 * A streamed reply, one chunk per piece (a string is a `TextDelta`), ended by a `Finish` built
 * from the options, or by `failWith` after the pieces.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const chunks = (pieces: ReadonlyArray<Piece>, options?: ChunksOptions): Reply => {
  const events = pieces.map((piece): Content => typeof piece === "string" ? { _tag: "TextDelta", text: piece } : piece)
  return {
    _tag: "Respond",
    events,
    finish: {
      finishReason: options?.finishReason ?? (events.some((e) => e._tag === "ToolCall") ? "tool_calls" : "stop"),
      rawFinishReason: options?.rawFinishReason,
      usage: tokensOf(options?.usage),
      model: options?.model,
      requestId: options?.requestId,
      costUsd: options?.costUsd
    },
    failWith: options?.failWith
  }
}

const permissive: Capabilities.Capabilities = {
  tools: true,
  parallelToolCalls: true,
  thinking: true,
  reasoningEffort: true,
  vision: true,
  codeExecution: true,
  promptCaching: true,
  contextWindow: 1_000_000,
  maxOutputTokens: 128_000
}

const capabilitiesOf = (model: string): Capabilities.Capabilities => {
  const known = Capabilities.forModel(model)
  return known === Capabilities.unknown ? permissive : known
}

const rawFinish = (spec: FinishSpec, model: string): LLM.FinishOptions => ({
  finishReason: spec.finishReason,
  rawFinishReason: spec.rawFinishReason,
  usage: spec.usage ?? Usage.emptyTokens,
  model: spec.model ?? model,
  requestId: spec.requestId,
  costUsd: spec.costUsd
})

const currentReply: Effect.Effect<Reply> = Effect.flatMap(
  Effect.serviceOption(CurrentReply),
  Option.match({
    onNone: () => Effect.dieMessage("MockLLM: the driver ran outside a scripted call"),
    onSome: Effect.succeed
  })
)

/**
 * Builds the mock: one service that is both the `LLM` and the `MockLLM`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (script: Script, options?: Options): Effect.Effect<Service> =>
  Effect.gen(function*() {
    const providerId = options?.providerId ?? "mock"
    const latency = options?.latency
    const countOf = options?.countTokens
    const received = yield* Ref.make(Chunk.empty<LLM.CompletionRequest>())

    const delayed = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      latency === undefined ? effect : Effect.zipRight(Effect.sleep(latency), effect)

    const inner = yield* LLM.make({
      providerId,
      providerType: "mock",
      defaultModel: options?.defaultModel ?? "mock-model",
      defaultMaxTokens: 4096,
      capabilities: capabilitiesOf,
      pricing: options?.pricing,
      countTokens: countOf === undefined
        ? undefined
        : (request) => Effect.sync(() => typeof countOf === "number" ? countOf : countOf(request)),
      clampMaxTokens: options?.clampMaxTokens,
      send: (request) =>
        Effect.flatMap(currentReply, (reply) => {
          if (reply._tag === "Fail") return delayed(Effect.fail(reply.error))
          if (reply.failWith !== undefined) return delayed(Effect.fail(reply.failWith))
          return delayed(Effect.succeed([...reply.events, LLM.finish(rawFinish(reply.finish, request.model))]))
        }),
      sendStream: (request, report) =>
        Stream.unwrap(Effect.map(currentReply, (reply): Stream.Stream<Response.StreamEvent, LLMError.LLMError> => {
          if (reply._tag === "Fail") return Stream.fromEffect(delayed(Effect.fail(reply.error)))
          const content = Stream.fromChunks(...reply.events.map((event) => Chunk.of<Response.StreamEvent>(event)))
          const failWith = reply.failWith
          const end: Stream.Stream<Response.StreamEvent, LLMError.LLMError> = failWith === undefined
            ? Stream.succeed(LLM.finish(rawFinish(reply.finish, request.model)))
            : Stream.fromEffect(Effect.suspend(() => {
              // What the provider reported before it broke.
              if (reply.finish.usage !== undefined) report(reply.finish.usage)
              return Effect.fail(failWith)
            }))
          const body = Stream.concat(content, end)
          return latency === undefined ? body : Stream.unwrap(Effect.as(Effect.sleep(latency), body))
        }))
    })

    /** Records the request and picks its reply; fails when a list script has none left. */
    const next = (request: LLM.CompletionRequest): Effect.Effect<Reply, LLMError.InvalidRequestError> =>
      Ref.modify(received, (requests) => [Chunk.size(requests), Chunk.append(requests, request)] as const).pipe(
        Effect.flatMap((index) => {
          if (typeof script === "function") return Effect.sync(() => script(request, index))
          const reply = script[index]
          // Not a call the script answers: refused here, counted in no usage.
          return reply === undefined ? Effect.fail(exhaustedError(providerId, script.length)) : Effect.succeed(reply)
        })
      )

    const complete = (request: LLM.CompletionRequest): Effect.Effect<Response.LLMResponse, LLMError.LLMError> =>
      Effect.flatMap(next(request), (reply) => Effect.provideService(inner.complete(request), CurrentReply, reply))

    const stream = (request: LLM.CompletionRequest): Stream.Stream<Response.StreamEvent, LLMError.LLMError> =>
      Stream.unwrap(
        Effect.map(next(request), (reply) => Stream.provideService(inner.stream(request), CurrentReply, reply))
      )

    return {
      ...inner,
      complete,
      stream,
      requests: Effect.map(Ref.get(received), Chunk.toReadonlyArray),
      remaining: typeof script === "function"
        ? Effect.succeed(Number.POSITIVE_INFINITY)
        : Effect.map(Ref.get(received), (requests) => Math.max(0, script.length - Chunk.size(requests)))
    } satisfies Service
  })

const exhaustedError = (providerId: string, calls: number): LLMError.InvalidRequestError =>
  new LLMError.InvalidRequestError({
    provider: providerId,
    message: `MockLLM: script exhausted after ${calls} calls; add a reply to the script for every call the test makes`
  })

/**
 * The mock as a layer of both `LLM.LLM` and `MockLLM` (the same service).
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (script: Script, options?: Options): Layer.Layer<LLM.LLM | MockLLM> =>
  Layer.effectContext(
    Effect.map(make(script, options), (service) => Context.make(MockLLM, service).pipe(Context.add(LLM.LLM, service)))
  )

/**
 * Every request the `MockLLM` in context received, in order.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const requests: Effect.Effect<ReadonlyArray<LLM.CompletionRequest>, never, MockLLM> = Effect.flatMap(
  MockLLM,
  (mock) => mock.requests
)

/**
 * Replies left in the script of the `MockLLM` in context.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const remaining: Effect.Effect<number, never, MockLLM> = Effect.flatMap(MockLLM, (mock) => mock.remaining)
