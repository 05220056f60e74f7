import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Budget from "../src/Budget.js"
import * as Message from "../src/Message.js"
import * as MockLLM from "../src/testing/MockLLM.js"
const request = { messages: [Message.user("How much?")], maxTokens: 100 }
const N = 1000
const once = async (e: Effect.Effect<unknown, unknown>) => {
  const c = process.cpuUsage()
  await Effect.runPromise(Effect.orDie(Effect.repeatN(e, N - 1)))
  const u = process.cpuUsage(c)
  return (u.user + u.system) / N
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const main = async () => {
  const mock = await Effect.runPromise(MockLLM.make(() => MockLLM.text("ok", { usage: { inputTokens: 10, outputTokens: 5 } }), { pricing: { "mock-model": { input: 1, output: 2 } } }))
  const budget = await Effect.runPromise(Budget.make({ total: { usd: 1e9 } }))
  const g = Budget.guard(mock, budget)
  const variants: Record<string, Effect.Effect<unknown, unknown>> = {
    plain: Stream.runDrain(mock.stream(request)),
    provide: Stream.runDrain(Stream.provideService(mock.stream(request), Budget.Budget, budget)),
    ensuring: Stream.runDrain(Stream.ensuringWith(mock.stream(request), () => Effect.void)),
    unwrap: Stream.runDrain(Stream.unwrap(Effect.sync(() => mock.stream(request)))),
    mapChunks: Stream.runDrain(Stream.mapChunks(mock.stream(request), (c) => c)),
    suspend: Stream.runDrain(Stream.suspend(() => mock.stream(request))),
    guarded: Stream.runDrain(g.stream(request))
  }
  const res: Record<string, number[]> = {}
  for (const k of Object.keys(variants)) { await once(variants[k]!); res[k] = [] }
  for (let r = 0; r < 7; r++) for (const k of Object.keys(variants)) res[k]!.push(await once(variants[k]!))
  for (const k of Object.keys(variants)) console.log(k, med(res[k]!).toFixed(1))
}
void main()
