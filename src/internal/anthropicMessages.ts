/**
 * The Anthropic Messages API wire format: request body, JSON reply, and the SSE handler.
 */
import type * as Sdk from "@anthropic-ai/sdk/resources/messages"
import type * as Message from "../Message.js"
import type * as Response from "../Response.js"
import type * as Usage from "../Usage.js"
import * as Errors from "./errors.js"
import * as Provider from "./provider.js"
import type * as Sse from "./sse.js"

const finishReason = (stop: string | null | undefined): Response.FinishReason => {
  switch (stop) {
    case "end_turn":
    case "stop_sequence":
      return "stop"
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length"
    case "tool_use":
      return "tool_calls"
    case "refusal":
      return "content_filter"
    default:
      return "other"
  }
}

interface WireCounts {
  readonly input_tokens?: number | null
  readonly output_tokens?: number | null
  readonly cache_read_input_tokens?: number | null
  readonly cache_creation_input_tokens?: number | null
}

interface WireUsage extends WireCounts {
  /** Server-side steps of the call; a `compaction` step is billed but left out of the top-level counts. */
  readonly iterations?: ReadonlyArray<WireCounts & { readonly type?: string }> | null
}

/** Normalises Anthropic usage; every count is checked (`Errors.tokenCount`). */
const tokensOf = (
  ctx: Errors.ErrorContext,
  u: WireUsage | null | undefined,
  requestId: string | undefined
): Usage.Tokens => {
  const extra = (u?.iterations ?? []).filter((step) => step?.type === "compaction")
  const sum = (key: keyof WireCounts) =>
    extra.reduce(
      (total, step, i) => total + Errors.tokenCount(ctx, `usage.iterations[${i}].${key}`, step[key], requestId),
      Errors.tokenCount(ctx, `usage.${key}`, u?.[key], requestId)
    )
  const cacheRead = sum("cache_read_input_tokens")
  const cacheWrite = sum("cache_creation_input_tokens")
  return {
    // Anthropic's input_tokens excludes cache reads and writes.
    inputTokens: sum("input_tokens") + cacheRead + cacheWrite,
    outputTokens: sum("output_tokens"),
    cacheReadTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
    reasoningTokens: 0
  }
}

const toWirePart = (part: Message.Part): Sdk.ContentBlockParam | undefined => {
  switch (part._tag) {
    case "Text":
      return { type: "text", text: part.text }
    case "Image":
      return part.source._tag === "Base64"
        ? {
          type: "image",
          source: {
            type: "base64",
            media_type: part.source.mediaType as Sdk.Base64ImageSource["media_type"],
            data: part.source.data
          }
        }
        : { type: "image", source: { type: "url", url: part.source.url } }
    case "ToolCall":
      return { type: "tool_use", id: part.id, name: part.name, input: part.input ?? {} }
    case "ToolResult":
      return { type: "tool_result", tool_use_id: part.toolCallId, content: part.content, is_error: part.isError }
    case "Thinking":
      // Claude only takes back thinking it signed.
      return part.signature === undefined
        ? undefined
        : { type: "thinking", thinking: part.thinking, signature: part.signature }
    case "RedactedThinking":
      return { type: "redacted_thinking", data: part.data }
  }
}

const toWireParts = (parts: ReadonlyArray<Message.Part>): Array<Sdk.ContentBlockParam> => {
  const out: Array<Sdk.ContentBlockParam> = []
  for (const part of parts) {
    const wire = toWirePart(part)
    if (wire !== undefined) out.push(wire)
  }
  return out
}

const effortBudget = { minimal: 1024, low: 2048, medium: 8192, high: 16384 } as const

/** The API's smallest `budget_tokens`. */
export const minThinkingBudget = 1024

/**
 * What the Messages API would refuse in a request with `thinking`, said before any request (one
 * sentence naming the field), or `undefined`. The API wants `budget_tokens` of at least 1024 and
 * below `max_tokens` (unless interleaved thinking is on, a beta whose budget may exceed it); with
 * thinking, `temperature` only at 1, `top_p` only between 0.95 and 1, and no forced tool use.
 */
export const thinkingProblem = (request: Provider.ResolvedRequest, interleaved: boolean): string | undefined => {
  const thinking = request.thinking
  if (thinking === undefined) return undefined
  if ("budgetTokens" in thinking) {
    if (thinking.budgetTokens < minThinkingBudget) {
      return `thinking.budgetTokens is ${thinking.budgetTokens}; the API's minimum is ${minThinkingBudget}`
    }
    if (!interleaved && thinking.budgetTokens >= request.maxTokens) {
      return `thinking.budgetTokens (${thinking.budgetTokens}) must be below maxTokens (${request.maxTokens}); ` +
        `raise maxTokens or lower the budget`
    }
  } else if (request.maxTokens <= minThinkingBudget) {
    return `thinking: { effort: "${thinking.effort}" } needs maxTokens above ${minThinkingBudget} (the thinking ` +
      `budget is at least ${minThinkingBudget} tokens and must stay below maxTokens); maxTokens is ${request.maxTokens}`
  }
  if (request.temperature !== undefined && request.temperature !== 1) {
    return `temperature (${request.temperature}) cannot be set with thinking (only 1 is accepted); leave it unset`
  }
  if (request.topP !== undefined && (request.topP < 0.95 || request.topP > 1)) {
    return `topP (${request.topP}) with thinking must be between 0.95 and 1; leave it unset`
  }
  const choice = request.toolChoice
  if (choice !== undefined && choice !== "auto" && choice !== "none") {
    return `toolChoice ${
      typeof choice === "string" ? `"${choice}"` : `{ name: "${choice.name}" }`
    } forces tool use, which thinking does not allow; use "auto" or "none"`
  }
  return undefined
}

/** The Messages API body. `temperature` and `top_p` are still accepted by the API for the models
 * that support them, though SDK 1.x no longer types them. */
type Params = Sdk.MessageCreateParamsBase & { temperature?: number; top_p?: number }

/** The Messages API body for a request. */
export const toParams = (request: Provider.ResolvedRequest): Params => {
  const params: Params = {
    model: request.model,
    max_tokens: request.maxTokens,
    messages: request.messages.map((message) => ({ role: message.role, content: toWireParts(message.content) }))
  }
  if (request.system !== undefined) params.system = request.system
  if (request.temperature !== undefined) params.temperature = request.temperature
  if (request.topP !== undefined) params.top_p = request.topP
  if (request.stopSequences !== undefined) params.stop_sequences = [...request.stopSequences]
  if (request.tools !== undefined && request.tools.length > 0) {
    params.tools = request.tools.map((tool) => ({
      name: tool.name,
      ...(tool.description !== undefined ? { description: tool.description } : {}),
      input_schema: tool.parameters as Sdk.Tool.InputSchema
    }))
  }
  if (request.toolChoice !== undefined) {
    const choice = request.toolChoice
    params.tool_choice = choice === "auto"
      ? { type: "auto" }
      : choice === "required"
      ? { type: "any" }
      : choice === "none"
      ? { type: "none" }
      : { type: "tool", name: choice.name }
  }
  if (request.thinking !== undefined) {
    params.thinking = "budgetTokens" in request.thinking
      ? { type: "enabled", budget_tokens: request.thinking.budgetTokens }
      // The API's minimum budget is 1024 tokens, and the budget must stay below max_tokens (a
      // `maxTokens` of 1024 or less is refused before this, by `thinkingProblem`).
      : {
        type: "enabled",
        budget_tokens: Math.max(
          minThinkingBudget,
          Math.min(effortBudget[request.thinking.effort], request.maxTokens - 1)
        )
      }
  }
  const userId = request.metadata?.userId ?? request.metadata?.user_id
  if (userId !== undefined) params.metadata = { user_id: userId }
  return params
}

/**
 * The body of a `count_tokens` request: what the model reads (model, messages, system, tools,
 * tool choice, thinking), without the fields the endpoint refuses (`max_tokens`, sampling,
 * metadata).
 */
export const toCountParams = (request: Provider.ResolvedRequest): Sdk.MessageCountTokensParams => {
  const params = toParams(request)
  const out: Sdk.MessageCountTokensParams = { model: params.model, messages: params.messages }
  if (params.system !== undefined) out.system = params.system
  if (params.tools !== undefined) out.tools = params.tools
  if (params.tool_choice !== undefined) out.tool_choice = params.tool_choice
  if (params.thinking !== undefined) out.thinking = params.thinking
  return out
}

/** Maps a complete Messages API reply (its JSON body, shape checked here) to neutral events. */
export const fromMessage = (
  ctx: Errors.ErrorContext,
  body: unknown,
  requestId: string | undefined
): Provider.Completed => {
  const message = body as Sdk.Message
  if (message === null || typeof message !== "object" || !Array.isArray(message.content)) {
    throw Errors.malformed(ctx, "the reply has no content array", requestId)
  }
  const events: Array<Response.StreamEvent> = []
  for (const block of message.content) {
    switch (block.type) {
      case "text":
        events.push({ _tag: "TextDelta", text: block.text })
        break
      case "thinking":
        events.push({ _tag: "ThinkingDelta", thinking: block.thinking })
        events.push({ _tag: "ThinkingSignature", signature: block.signature })
        break
      case "redacted_thinking":
        events.push({ _tag: "RedactedThinking", data: block.data })
        break
      case "tool_use":
        events.push({ _tag: "ToolCall", id: block.id, name: block.name, input: block.input })
        break
      default:
        // Server tool blocks (web search, code execution, ...) are the provider's business.
        break
    }
  }
  return {
    events,
    finish: {
      finishReason: finishReason(message.stop_reason),
      rawFinishReason: message.stop_reason ?? undefined,
      usage: typeof message.usage === "object" && message.usage !== null
        ? tokensOf(ctx, message.usage, requestId)
        : undefined,
      model: message.model,
      requestId: requestId ?? (message as { _request_id?: string | null })._request_id ?? undefined
    }
  }
}

interface ToolBlock {
  readonly id: string
  readonly name: string
  json: string
}

/** The SSE handler of one Messages API stream. */
export const makeHandler = (
  ctx: Errors.ErrorContext,
  providerId: string,
  requestId: string | undefined,
  report: Provider.ReportUsage
): Sse.EventHandler => {
  const tools = new Map<number, ToolBlock>()
  let wire: WireUsage | undefined = undefined
  let model = ""
  let stopReason: string | undefined = undefined
  let done = false
  const usageUpdate = (u: WireUsage | undefined | null) => {
    if (u === undefined || u === null) return
    // message_delta usage is cumulative and may revise the start values: overwrite, never add.
    wire = {
      input_tokens: u.input_tokens ?? wire?.input_tokens ?? null,
      output_tokens: u.output_tokens ?? wire?.output_tokens ?? null,
      cache_read_input_tokens: u.cache_read_input_tokens ?? wire?.cache_read_input_tokens ?? null,
      cache_creation_input_tokens: u.cache_creation_input_tokens ?? wire?.cache_creation_input_tokens ?? null,
      iterations: u.iterations ?? wire?.iterations ?? null
    }
    report(tokensOf(ctx, wire, requestId))
  }
  return {
    onEvent: (_event, data, out) => {
      if (data === "") return
      let json: any
      try {
        json = JSON.parse(data)
      } catch {
        throw Errors.malformed(ctx, `an event is not JSON: ${data.slice(0, 200)}`, requestId)
      }
      switch (json?.type) {
        case "message_start": {
          model = json.message?.model ?? model
          usageUpdate(json.message?.usage)
          return
        }
        case "content_block_start": {
          const block = json.content_block
          switch (block?.type) {
            case "text":
              if (typeof block.text === "string" && block.text.length > 0) {
                out.push({ _tag: "TextDelta", text: block.text })
              }
              return
            case "thinking":
              if (typeof block.thinking === "string" && block.thinking.length > 0) {
                out.push({ _tag: "ThinkingDelta", thinking: block.thinking })
              }
              return
            case "redacted_thinking":
              out.push({ _tag: "RedactedThinking", data: block.data })
              return
            case "fallback":
              // The requested model could not answer; this one did.
              if (typeof block.to?.model === "string") model = block.to.model
              return
            case "tool_use":
              tools.set(json.index, { id: block.id, name: block.name, json: "" })
              out.push({ _tag: "ToolCallStart", id: block.id, name: block.name })
              return
            default:
              return
          }
        }
        case "content_block_delta": {
          const delta = json.delta
          switch (delta?.type) {
            case "text_delta":
              out.push({ _tag: "TextDelta", text: delta.text })
              return
            case "thinking_delta":
              out.push({ _tag: "ThinkingDelta", thinking: delta.thinking })
              return
            case "signature_delta":
              out.push({ _tag: "ThinkingSignature", signature: delta.signature })
              return
            case "input_json_delta": {
              const tool = tools.get(json.index)
              if (tool === undefined || typeof delta.partial_json !== "string" || delta.partial_json === "") return
              tool.json += delta.partial_json
              out.push({ _tag: "ToolCallDelta", id: tool.id, argumentsDelta: delta.partial_json })
              return
            }
            default:
              return
          }
        }
        case "content_block_stop": {
          const tool = tools.get(json.index)
          if (tool === undefined) return
          tools.delete(json.index)
          let input: unknown
          try {
            input = tool.json === "" ? {} : JSON.parse(tool.json)
          } catch {
            throw Errors.malformed(ctx, `the arguments of tool call ${tool.id} (${tool.name}) are not JSON`, requestId)
          }
          out.push({ _tag: "ToolCall", id: tool.id, name: tool.name, input })
          return
        }
        case "message_delta": {
          if (json.delta?.stop_reason !== undefined && json.delta?.stop_reason !== null) {
            stopReason = json.delta.stop_reason
          }
          usageUpdate(json.usage)
          return
        }
        case "message_stop": {
          if (done) return
          done = true
          out.push(Provider.finishEvent(providerId, {
            finishReason: finishReason(stopReason),
            rawFinishReason: stopReason,
            usage: wire === undefined ? undefined : tokensOf(ctx, wire, requestId),
            model,
            requestId
          }))
          return
        }
        case "error":
          throw Errors.fromStreamError(ctx, json, requestId)
        default:
          // ping, and event types this version does not know: skipped.
          return
      }
    },
    onEnd: () => {
      if (!done) throw Errors.truncated(ctx, "message_stop", requestId)
    }
  }
}
