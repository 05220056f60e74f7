import type * as Message from "../Message.js"
import type * as Response from "../Response.js"
import type * as Tool from "../Tool.js"
import * as Usage from "../Usage.js"

/**
 * Folds neutral events into an `LLMResponse`. Both `complete` (providers feed it the parts of a
 * JSON reply) and `Response.collect` (fed a stream) go through it, so the two always agree.
 * Local mutable state: one builder per call, never shared.
 */
export class ResponseBuilder {
  private readonly parts: Array<Message.Part> = []
  private readonly toolCalls: Array<Tool.ToolCall> = []
  private text = ""
  private thinking: string | undefined = undefined
  private finish: Response.Finish | undefined = undefined

  add(event: Response.StreamEvent): void {
    const last = this.parts[this.parts.length - 1]
    switch (event._tag) {
      case "TextDelta": {
        if (event.text.length === 0) return
        this.text += event.text
        if (last !== undefined && last._tag === "Text") {
          this.parts[this.parts.length - 1] = { _tag: "Text", text: last.text + event.text }
        } else {
          this.parts.push({ _tag: "Text", text: event.text })
        }
        return
      }
      case "ThinkingDelta": {
        if (event.thinking.length === 0) return
        this.thinking = (this.thinking ?? "") + event.thinking
        if (last !== undefined && last._tag === "Thinking" && last.signature === undefined) {
          this.parts[this.parts.length - 1] = { _tag: "Thinking", thinking: last.thinking + event.thinking }
        } else {
          this.parts.push({ _tag: "Thinking", thinking: event.thinking })
        }
        return
      }
      case "ThinkingSignature": {
        if (last !== undefined && last._tag === "Thinking" && last.signature === undefined) {
          this.parts[this.parts.length - 1] = { _tag: "Thinking", thinking: last.thinking, signature: event.signature }
        } else {
          this.thinking ??= ""
          this.parts.push({ _tag: "Thinking", thinking: "", signature: event.signature })
        }
        return
      }
      case "RedactedThinking": {
        this.parts.push({ _tag: "RedactedThinking", data: event.data })
        return
      }
      case "ToolCall": {
        const call: Tool.ToolCall = { id: event.id, name: event.name, input: event.input }
        this.toolCalls.push(call)
        this.parts.push({ _tag: "ToolCall", ...call })
        return
      }
      case "Finish": {
        this.finish = event
        return
      }
      case "ToolCallStart":
      case "ToolCallDelta":
        return
    }
  }

  addAll(events: Iterable<Response.StreamEvent>): void {
    for (const event of events) this.add(event)
  }

  build(): Response.LLMResponse {
    const finish = this.finish
    const response: {
      -readonly [K in keyof Response.LLMResponse]: Response.LLMResponse[K]
    } = {
      content: this.text,
      parts: this.parts,
      toolCalls: this.toolCalls,
      model: finish?.model ?? "",
      finishReason: finish?.finishReason ?? "other",
      usage: finish?.usage ?? Usage.emptyTokens,
      costUsd: finish?.costUsd,
      providerId: finish?.providerId ?? ""
    }
    if (this.thinking !== undefined) response.thinking = this.thinking
    if (finish?.rawFinishReason !== undefined) response.rawFinishReason = finish.rawFinishReason
    if (finish?.requestId !== undefined) response.requestId = finish.requestId
    if (finish?.rateLimits !== undefined) response.rateLimits = finish.rateLimits
    if (finish?.usageUnknown === true) response.usageUnknown = true
    return response
  }
}
