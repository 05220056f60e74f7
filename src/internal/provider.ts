/**
 * What the built-in provider modules share on the way to the call path (`LLM.make`): the neutral
 * form of a reply (`RawFinish`, `Completed`) that their wire mappings produce, and its conversion
 * to the `StreamEvent`s a driver hands back. The call path itself is `pipeline.ts`; the call
 * recorder `recorder.ts`; span and metric helpers `telemetry.ts`.
 */
import type * as LLM from "../LLM.js"
import type * as Response from "../Response.js"
import * as Usage from "../Usage.js"
import * as internal from "./telemetry.js"

/** A request with the provider's defaults applied. */
export type ResolvedRequest = LLM.ResolvedRequest

/** The end of a reply as a provider reports it, before pricing. */
export type RawFinish = LLM.FinishOptions

/** A complete (non-streamed) reply in neutral form: content events in order, then the end. */
export interface Completed {
  readonly events: ReadonlyArray<Response.StreamEvent>
  readonly finish: RawFinish
}

/** Called by a driver whenever the provider reports usage before the end. */
export type ReportUsage = LLM.ReportUsage

/** Builds a raw `Finish` event; the shared path prices it. */
export const finishEvent = (providerId: string, raw: RawFinish): Response.Finish => {
  const event: { -readonly [K in keyof Response.Finish]: Response.Finish[K] } = {
    _tag: "Finish",
    finishReason: raw.finishReason,
    usage: raw.usage ?? Usage.emptyTokens,
    costUsd: raw.usage === undefined ? undefined : raw.costUsd,
    model: raw.model,
    providerId
  }
  if (raw.usage === undefined) event.usageUnknown = true
  if (raw.rawFinishReason !== undefined) event.rawFinishReason = raw.rawFinishReason
  if (raw.requestId !== undefined) event.requestId = raw.requestId
  return event
}

/** The events of a complete reply, its `Finish` last: what a driver's `send` returns. */
export const toEvents = (providerId: string, completed: Completed): ReadonlyArray<Response.StreamEvent> => [
  ...completed.events,
  finishEvent(providerId, completed.finish)
]

/** Whether anyone can see a span of this call (see `telemetry.ts`). */
export const observed = internal.observed

/** A `Finish` with the reply's rate-limit headers; other events as they are. */
export const withRateLimits = (
  event: Response.StreamEvent,
  rateLimits: Readonly<Record<string, string>>
): Response.StreamEvent => event._tag === "Finish" ? { ...event, rateLimits } : event

/** The events of a reply with its rate-limit headers on its `Finish`, when it had any. */
export const withRateLimitsOnFinish = (
  events: ReadonlyArray<Response.StreamEvent>,
  rateLimits: Readonly<Record<string, string>> | undefined
): ReadonlyArray<Response.StreamEvent> =>
  rateLimits === undefined ? events : events.map((event) => withRateLimits(event, rateLimits))
