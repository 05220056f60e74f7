/**
 * The shared call path's promise: every call that reached the provider is recorded exactly once,
 * whatever point an interruption lands on.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as Message from "../src/Message.js"
import * as MockLLM from "../src/testing/MockLLM.js"

/** A tracer that only counts the calls' spans: one span per call that started. */
const countingTracer = () => {
  const counter = { started: 0, ended: 0 }
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      if (name.startsWith("LLM.")) counter.started++
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: `span${counter.started}`,
        traceId: "trace",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes: new Map(),
        links: [...links],
        sampled: true,
        kind,
        attribute: () => {},
        event: () => {},
        end: () => {
          if (name.startsWith("LLM.")) counter.ended++
        },
        addLinks: () => {}
      }
      return span
    },
    context: (f) => f()
  })
  return { tracer, counter }
}

const reply = () =>
  MockLLM.chunks(["Hel", "lo"], { usage: { inputTokens: 10, outputTokens: 2 }, model: "claude-sonnet-4-5" })

describe("exactly-once recording", () => {
  it.effect("an interruption at any point of a stream never loses the call: every started call is recorded once", () =>
    Effect.gen(function*() {
      const lost: Array<string> = []
      // Fibers that yield every few operations, interrupted after k yields of the test's fiber: the
      // interruption lands on every step of the call in turn.
      for (let step = 0; step < 600; step++) {
        const k = step % 60
        const ops = 10 + Math.floor(step / 60)
        const { counter, tracer } = countingTracer()
        const llm = yield* MockLLM.make([reply()])
        const fiber = yield* Stream.runDrain(llm.stream({ messages: [Message.user("Hi")] })).pipe(
          Effect.withMaxOpsBeforeYield(ops),
          Effect.withTracer(tracer),
          Effect.fork
        )
        for (let i = 0; i < k; i++) yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
        const usage = yield* llm.usage
        expect(usage.calls).toBeLessThanOrEqual(1)
        if (usage.calls !== counter.started) lost.push(`${step}:${usage.calls}/${counter.started}/${counter.ended}`)
        expect(counter.ended).toBe(counter.started)
      }
      expect(lost).toEqual([])
    }))

  it.effect("an interruption at any point of complete never loses the call", () =>
    Effect.gen(function*() {
      const lost: Array<string> = []
      // Fibers that yield every few operations, interrupted after k yields of the test's fiber: the
      // interruption lands on every step of the call in turn.
      for (let step = 0; step < 600; step++) {
        const k = step % 60
        const ops = 10 + Math.floor(step / 60)
        const { counter, tracer } = countingTracer()
        const llm = yield* MockLLM.make([reply()])
        const fiber = yield* llm.complete({ messages: [Message.user("Hi")] }).pipe(
          Effect.withMaxOpsBeforeYield(ops),
          Effect.withTracer(tracer),
          Effect.fork
        )
        for (let i = 0; i < k; i++) yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
        const usage = yield* llm.usage
        if (usage.calls !== counter.started) lost.push(`${step}:${usage.calls}/${counter.started}/${counter.ended}`)
        expect(counter.ended).toBe(counter.started)
      }
      expect(lost).toEqual([])
    }))
})
