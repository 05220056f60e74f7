/**
 * The OpenAI Chat Completions wire format, shared by the `OpenAI` provider (through the SDK) and
 * every OpenAI-compatible backend: request body, JSON reply, and the SSE handler.
 */
import type * as Message from "../Message.js"
import type * as Response from "../Response.js"
import type * as Usage from "../Usage.js"
import * as Errors from "./errors.js"
import * as Provider from "./provider.js"
import type * as Sse from "./sse.js"

/** How a backend's dialect differs from OpenAI's own. */
export interface Dialect {
  /** `max_completion_tokens` (OpenAI) or `max_tokens` (most compatible servers). */
  readonly maxTokensField: "max_completion_tokens" | "max_tokens"
  /** Send `stream_options: { include_usage: true }` (some servers reject it). */
  readonly streamUsage: boolean
}

/** OpenAI's own dialect. */
export const openaiDialect: Dialect = { maxTokensField: "max_completion_tokens", streamUsage: true }

const effortOf = (thinking: NonNullable<Provider.ResolvedRequest["thinking"]>): string =>
  "effort" in thinking
    ? thinking.effort
    : thinking.budgetTokens <= 2048
    ? "low"
    : thinking.budgetTokens <= 8192
    ? "medium"
    : "high"

const imageUrl = (part: Message.ImagePart): string =>
  part.source._tag === "Url" ? part.source.url : `data:${part.source.mediaType};base64,${part.source.data}`

const userMessages = (message: Message.LLMMessage): Array<Record<string, unknown>> => {
  const out: Array<Record<string, unknown>> = []
  const content: Array<Record<string, unknown>> = []
  let allText = true
  for (const part of message.content) {
    switch (part._tag) {
      case "ToolResult":
        out.push({ role: "tool", tool_call_id: part.toolCallId, content: part.content })
        break
      case "Text":
        content.push({ type: "text", text: part.text })
        break
      case "Image":
        allText = false
        content.push({ type: "image_url", image_url: { url: imageUrl(part) } })
        break
      default:
        break
    }
  }
  if (content.length > 0) {
    out.push({
      role: "user",
      content: allText ? content.map((part) => part.text as string).join("") : content
    })
  }
  return out
}

const assistantMessage = (message: Message.LLMMessage): Record<string, unknown> => {
  let text = ""
  const toolCalls: Array<Record<string, unknown>> = []
  for (const part of message.content) {
    if (part._tag === "Text") text += part.text
    else if (part._tag === "ToolCall") {
      toolCalls.push({
        id: part.id,
        type: "function",
        function: {
          name: part.name,
          arguments: typeof part.input === "string" ? part.input : JSON.stringify(part.input ?? {})
        }
      })
    }
    // Reasoning is not sent back: OpenAI-style servers neither need nor accept it.
  }
  const out: Record<string, unknown> = { role: "assistant", content: text === "" && toolCalls.length > 0 ? null : text }
  if (toolCalls.length > 0) out.tool_calls = toolCalls
  return out
}

/** The request body (without `stream`). */
export const toBody = (request: Provider.ResolvedRequest, dialect: Dialect): Record<string, unknown> => {
  const messages: Array<Record<string, unknown>> = []
  if (request.system !== undefined) messages.push({ role: "system", content: request.system })
  for (const message of request.messages) {
    if (message.role === "assistant") messages.push(assistantMessage(message))
    else messages.push(...userMessages(message))
  }
  const body: Record<string, unknown> = { model: request.model, messages }
  body[dialect.maxTokensField] = request.maxTokens
  if (request.temperature !== undefined) body.temperature = request.temperature
  if (request.topP !== undefined) body.top_p = request.topP
  if (request.stopSequences !== undefined) body.stop = [...request.stopSequences]
  if (request.tools !== undefined && request.tools.length > 0) {
    body.tools = request.tools.map((tool) => ({
      type: "function",
      function: {
        name: tool.name,
        ...(tool.description !== undefined ? { description: tool.description } : {}),
        parameters: tool.parameters
      }
    }))
  }
  if (request.toolChoice !== undefined) {
    const choice = request.toolChoice
    body.tool_choice = typeof choice === "string" ? choice : { type: "function", function: { name: choice.name } }
  }
  if (request.thinking !== undefined) body.reasoning_effort = effortOf(request.thinking)
  const user = request.metadata?.userId ?? request.metadata?.user_id
  if (user !== undefined) body.user = user
  return body
}

/** The streaming body. */
export const toStreamBody = (request: Provider.ResolvedRequest, dialect: Dialect): Record<string, unknown> => {
  const body = toBody(request, dialect)
  body.stream = true
  if (dialect.streamUsage) body.stream_options = { include_usage: true }
  return body
}

/**
 * Maps a wire `finish_reason`. Gateways in front of Claude may pass Anthropic's stop reasons
 * through unchanged (`end_turn`, `tool_use`, ...): they map as the Anthropic provider maps them.
 */
export const finishReason = (raw: string | null | undefined): Response.FinishReason => {
  switch (raw) {
    case "stop":
    case "end_turn":
    case "stop_sequence":
      return "stop"
    case "length":
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length"
    case "tool_calls":
    case "function_call":
    case "tool_use":
      return "tool_calls"
    case "content_filter":
    case "refusal":
      return "content_filter"
    default:
      return "other"
  }
}

const isUsage = (u: unknown): boolean => typeof u === "object" && u !== null

const present = (u: unknown): boolean => u !== undefined && u !== null

/**
 * Normalises a Chat Completions `usage`; every count is checked (`Errors.tokenCount`).
 *
 * OpenAI's `prompt_tokens` includes its `cached_tokens`. Gateways that translate Anthropic add
 * `cache_creation_input_tokens` (and Portkey `cache_read_input_tokens`) beside it, and do not agree
 * on whether `prompt_tokens` already counts them: `total_tokens` tells (what it counts beyond
 * `prompt_tokens + completion_tokens` is prompt left out of `prompt_tokens`). Without a total that
 * tells, cache reads are taken as included (OpenAI) and cache writes as left out (Anthropic).
 */
export const tokensOf = (ctx: Errors.ErrorContext, u: any, requestId?: string): Usage.Tokens => {
  const count = (field: string, value: unknown) => Errors.tokenCount(ctx, `usage.${field}`, value, requestId)
  const cacheRead = present(u?.prompt_tokens_details?.cached_tokens)
    ? count("prompt_tokens_details.cached_tokens", u.prompt_tokens_details.cached_tokens)
    : present(u?.prompt_cache_hit_tokens)
    ? count("prompt_cache_hit_tokens", u.prompt_cache_hit_tokens)
    : count("cache_read_input_tokens", u?.cache_read_input_tokens)
  const cacheWrite = count("cache_creation_input_tokens", u?.cache_creation_input_tokens)
  const prompt = count("prompt_tokens", u?.prompt_tokens)
  const completion = count("completion_tokens", u?.completion_tokens)
  const reasoning = count("completion_tokens_details.reasoning_tokens", u?.completion_tokens_details?.reasoning_tokens)
  const total = present(u?.total_tokens) ? count("total_tokens", u.total_tokens) : undefined
  // xAI counts reasoning apart from completion_tokens (total = prompt + completion + reasoning);
  // OpenAI counts it inside. Output always includes reasoning here.
  const reasoningApart = reasoning > 0 && total === prompt + completion + reasoning
  const beyond = total === undefined ? undefined : total - prompt - completion - (reasoningApart ? reasoning : 0)
  const leftOut = cacheRead + cacheWrite > 0 && beyond === cacheRead + cacheWrite
    ? cacheRead + cacheWrite
    : beyond === 0
    ? 0
    : cacheWrite
  return {
    inputTokens: prompt + leftOut,
    outputTokens: reasoningApart ? completion + reasoning : completion,
    cacheReadTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
    reasoningTokens: reasoning
  }
}

const parseArguments = (
  ctx: Errors.ErrorContext,
  id: string,
  name: string,
  args: string,
  requestId: string | undefined
): unknown => {
  if (args.trim() === "") return {}
  try {
    return JSON.parse(args)
  } catch {
    throw Errors.malformed(ctx, `the arguments of tool call ${id} (${name}) are not JSON`, requestId)
  }
}

const reasoningOf = (m: any): unknown => m?.reasoning_content ?? m?.reasoning

/**
 * The cost a gateway put in `usage.cost` (a LiteLLM proxy in a stream's last chunk, where its
 * `x-litellm-response-cost` header cannot be: the headers leave before the cost is known).
 */
const usageCost = (u: any): number | undefined => {
  const cost: unknown = u?.cost
  return typeof cost === "number" && Number.isFinite(cost) && cost >= 0 ? cost : undefined
}

/**
 * Maps a complete Chat Completions reply to neutral events. `costUsd` is the cost a gateway
 * reported in a header; with `reportsCost`, the body's `usage.cost` is read too (and wins).
 */
export const fromCompletion = (
  ctx: Errors.ErrorContext,
  data: any,
  requestId: string | undefined,
  costUsd?: number,
  reportsCost = false
): Provider.Completed => {
  if (data !== null && typeof data === "object" && data.error !== undefined && data.error !== null) {
    throw Errors.fromStreamError(ctx, data, requestId)
  }
  const choice = Array.isArray(data?.choices) ? data.choices[0] : undefined
  if (choice === undefined || choice === null || typeof choice.message !== "object" || choice.message === null) {
    throw Errors.malformed(ctx, "the reply has no choices[0].message", requestId)
  }
  const message = choice.message
  const events: Array<Response.StreamEvent> = []
  const reasoning = reasoningOf(message)
  if (typeof reasoning === "string" && reasoning !== "") events.push({ _tag: "ThinkingDelta", thinking: reasoning })
  if (typeof message.content === "string" && message.content !== "") {
    events.push({ _tag: "TextDelta", text: message.content })
  }
  if (typeof message.refusal === "string" && message.refusal !== "") {
    events.push({ _tag: "TextDelta", text: message.refusal })
  }
  if (Array.isArray(message.tool_calls)) {
    for (const call of message.tool_calls) {
      const name = call?.function?.name ?? ""
      const input = parseArguments(ctx, call?.id ?? "", name, call?.function?.arguments ?? "", requestId)
      events.push({ _tag: "ToolCall", id: call?.id ?? "", name, input })
    }
  }
  const refused = typeof message.refusal === "string" && message.refusal !== ""
  return {
    events,
    finish: {
      finishReason: refused ? "content_filter" : finishReason(choice.finish_reason),
      rawFinishReason: choice.finish_reason ?? undefined,
      // Some compatible servers send no usage: unknown, not zero.
      usage: isUsage(data.usage) ? tokensOf(ctx, data.usage, requestId) : undefined,
      model: typeof data.model === "string" ? data.model : "",
      requestId,
      costUsd: (reportsCost ? usageCost(data.usage) : undefined) ?? costUsd
    }
  }
}

interface ToolState {
  readonly id: string
  readonly name: string
  args: string
}

/**
 * The SSE handler of one Chat Completions stream. `costUsd` is the cost a gateway reported in a
 * header; with `reportsCost`, a chunk's `usage.cost` is read too (and wins): a LiteLLM proxy puts
 * a stream's cost there, in the last chunk.
 */
export const makeHandler = (
  ctx: Errors.ErrorContext,
  providerId: string,
  requestId: string | undefined,
  report: Provider.ReportUsage,
  costUsd?: number,
  reportsCost = false
): Sse.EventHandler => {
  let cost = costUsd
  // Every call in the order it started; `open` maps a wire `index` to the call in progress there.
  let tools: Array<ToolState> = []
  let open = new Map<number, ToolState>()
  let usage: Usage.Tokens | undefined = undefined
  let model = ""
  let rawFinish: string | undefined = undefined
  let refused = false
  let done = false

  const flushTools = (out: Array<Response.StreamEvent>) => {
    for (const tool of tools) {
      out.push({
        _tag: "ToolCall",
        id: tool.id,
        name: tool.name,
        input: parseArguments(ctx, tool.id, tool.name, tool.args, requestId)
      })
    }
    tools = []
    open = new Map()
  }

  const finish = (out: Array<Response.StreamEvent>) => {
    if (done) return
    done = true
    flushTools(out)
    out.push(Provider.finishEvent(providerId, {
      finishReason: refused ? "content_filter" : finishReason(rawFinish),
      rawFinishReason: rawFinish,
      // A server that ignores `stream_options.include_usage` sends none: unknown, not zero.
      usage,
      model,
      requestId,
      costUsd: cost
    }))
  }

  return {
    onEvent: (_event, data, out) => {
      if (data === "" || done) return
      if (data === "[DONE]") return finish(out)
      let json: any
      try {
        json = JSON.parse(data)
      } catch {
        throw Errors.malformed(ctx, `an event is not JSON: ${data.slice(0, 200)}`, requestId)
      }
      if (json === null || typeof json !== "object") return
      if (json.error !== undefined && json.error !== null) throw Errors.fromStreamError(ctx, json, requestId)
      if (typeof json.model === "string" && json.model !== "") model = json.model
      if (json.usage !== undefined && json.usage !== null && typeof json.usage === "object") {
        usage = tokensOf(ctx, json.usage, requestId)
        if (reportsCost) cost = usageCost(json.usage) ?? cost
        report(usage)
      }
      const choices = json.choices
      if (!Array.isArray(choices) || choices.length === 0) return
      const choice = choices[0]
      if (choice === null || typeof choice !== "object" || (choice.index !== undefined && choice.index !== 0)) return
      const delta = choice.delta
      if (delta !== undefined && delta !== null) {
        const reasoning = reasoningOf(delta)
        if (typeof reasoning === "string" && reasoning !== "") out.push({ _tag: "ThinkingDelta", thinking: reasoning })
        if (typeof delta.content === "string" && delta.content !== "") {
          out.push({ _tag: "TextDelta", text: delta.content })
        }
        if (typeof delta.refusal === "string" && delta.refusal !== "") {
          refused = true
          out.push({ _tag: "TextDelta", text: delta.refusal })
        }
        if (Array.isArray(delta.tool_calls)) {
          for (const call of delta.tool_calls) {
            const index: number = typeof call?.index === "number" ? call.index : 0
            const id: unknown = call?.id
            let tool = open.get(index)
            // Ollama and some other compatible servers send every parallel call at `index: 0`, told
            // apart only by `id` (ollama/ollama#15457): another id at an occupied index is a new call.
            if (tool === undefined || (typeof id === "string" && id !== "" && id !== tool.id)) {
              tool = {
                id: typeof id === "string" && id !== "" ? id : `call_${tools.length}`,
                name: call?.function?.name ?? "",
                args: ""
              }
              open.set(index, tool)
              tools.push(tool)
              out.push({ _tag: "ToolCallStart", id: tool.id, name: tool.name })
            }
            const fragment = call?.function?.arguments
            if (typeof fragment === "string" && fragment !== "") {
              tool.args += fragment
              out.push({ _tag: "ToolCallDelta", id: tool.id, argumentsDelta: fragment })
            }
          }
        }
      }
      if (typeof choice.finish_reason === "string") {
        rawFinish = choice.finish_reason
        // Tool calls are final at the finish reason, never because partial arguments parse.
        flushTools(out)
      }
    },
    onEnd: (out) => {
      if (done) return
      // Some compatible servers end after the finish reason without `[DONE]`.
      if (rawFinish !== undefined) return finish(out)
      throw Errors.truncated(ctx, "its finish_reason and [DONE]", requestId)
    }
  }
}
