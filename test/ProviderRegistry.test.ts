import * as FileSystem from "@effect/platform/FileSystem"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { inspect } from "node:util"
import * as LLM from "../src/LLM.js"
import * as LLMError from "../src/LLMError.js"
import * as Message from "../src/Message.js"
import * as ProviderRegistry from "../src/ProviderRegistry.js"
import * as LiteLLM from "../src/providers/LiteLLM.js"
import * as ProvidersConfig from "../src/ProvidersConfig.js"
import * as Response from "../src/Response.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"
import * as MockLLM from "../src/testing/MockLLM.js"
import * as Usage from "../src/Usage.js"
import { ask, awaitRequests, awaitSleepAt, awaitTrue, realPause } from "./helpers.js"

const { Reply } = FakeProviderServer

const ANTHROPIC_KEY = "sk-ant-SECRET-4b1d0c9e7a2f"
const OPENAI_KEY = "sk-proj-SECRET-8c3e5f1a9b7d"
const AZURE_KEY = "azure-SECRET-2e6a4c8b0d1f"

const yaml = `
providers:
  claude_main:
    type: anthropic
    api_key: \${ANTHROPIC_API_KEY}
    default_model: claude-sonnet-4-6
    base_url: \${FAKE_URL}
  openai_main:
    api_key: \${OPENAI_API_KEY}
    default_model: gpt-4o
    base_url: \${FAKE_URL}/v1
    organization: org-test
  azure_gpt:
    type: litellm
    api_key: \${AZURE_API_KEY}
    default_model: azure/gpt-4
    base_url: \${FAKE_URL}
    api_version: "2024-10-21"
agents:
  planner:
    provider: claude_main
    model: claude-opus-4-1
    max_tokens: 2048
    temperature: 0.2
    system: You plan work in small steps.
  coder:
    provider: openai_main
    model: gpt-4o-mini
    max_tokens: 512
    system: You write TypeScript.
`

const envFor = (server: FakeProviderServer.Service) =>
  ConfigProvider.fromMap(
    new Map([
      ["ANTHROPIC_API_KEY", ANTHROPIC_KEY],
      ["OPENAI_API_KEY", OPENAI_KEY],
      ["AZURE_API_KEY", AZURE_KEY],
      ["FAKE_URL", server.url]
    ])
  )

const configFor = (server: FakeProviderServer.Service, text = yaml) =>
  ProvidersConfig.parse(text, "test/providers.yaml").pipe(Effect.withConfigProvider(envFor(server)))

/** Runs `effect` with a registry of `text` on the shared fake server, the environment supplied by a map. */
const withRegistry = <A, E>(
  effect: (server: FakeProviderServer.Service) => Effect.Effect<A, E, ProviderRegistry.ProviderRegistry>,
  options?: ProviderRegistry.Options & { readonly text?: string }
) =>
  Effect.gen(function*() {
    const server = yield* FakeProviderServer.FakeProviderServer
    yield* server.reset
    const config = yield* configFor(server, options?.text)
    return yield* effect(server).pipe(
      Effect.provide(ProviderRegistry.layerFromConfig(config, options)),
      Effect.withConfigProvider(envFor(server))
    )
  })

/** Waits until `fiber` has ended, without moving the TestClock. */
const awaitDone = <A, E>(what: string, fiber: Fiber.Fiber<A, E>, millis?: number) =>
  Effect.zipRight(
    awaitTrue(Effect.map(Fiber.poll(fiber), Option.isSome), what, millis),
    Fiber.join(fiber)
  )

/** Lets a fiber run its I/O for a while: when a test checks that nothing more happens. */
const settle = Effect.zipRight(realPause(50), Effect.yieldNow())

const paths = (server: FakeProviderServer.Service) =>
  Effect.map(server.requests, (requests) => requests.map((request) => request.path))

const ANTHROPIC_PATH = "/v1/messages"
const OPENAI_PATH = "/v1/chat/completions"
const AZURE_PATH = "/openai/deployments/gpt-4/chat/completions"

const unavailable = {
  anthropic: Reply.anthropicError(503, "api_error", "Service unavailable"),
  openai: Reply.openaiError(503, { message: "Service unavailable", type: "server_error" })
}

/** The three providers of `yaml` on the fake server, with `extra` lines under each (by id) and `agents`. */
const resilientYaml = (extra: Readonly<Record<string, string>>, agents = "") => {
  const under = (id: string) => (extra[id] ?? "").trim().split("\n").filter((l) => l !== "").map((l) => `    ${l}`)
  return [
    "providers:",
    "  claude_main:",
    "    type: anthropic",
    "    api_key: ${ANTHROPIC_API_KEY}",
    "    default_model: claude-sonnet-4-6",
    "    base_url: ${FAKE_URL}",
    ...under("claude_main"),
    "  openai_main:",
    "    api_key: ${OPENAI_API_KEY}",
    "    default_model: gpt-4o",
    "    base_url: ${FAKE_URL}/v1",
    ...under("openai_main"),
    "  azure_gpt:",
    "    type: litellm",
    "    api_key: ${AZURE_API_KEY}",
    "    default_model: azure/gpt-4",
    "    base_url: ${FAKE_URL}",
    "    api_version: \"2024-10-21\"",
    ...under("azure_gpt"),
    agents === "" ? "" : `agents:\n${agents.trim().split("\n").map((l) => `  ${l}`).join("\n")}`,
    ""
  ].join("\n")
}

const hasSecret = (u: unknown): boolean =>
  [inspect(u, { depth: null }), String(u), JSON.stringify(u) ?? ""].some((text) => text.includes("SECRET"))

layer(FakeProviderServer.layer())("ProviderRegistry against FakeProviderServer", (it) => {
  describe("providers and agents", () => {
    it.scoped("each provider answers through the fake server, with its own wire and auth", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          expect(yield* ProviderRegistry.list).toEqual([
            { id: "claude_main", type: "anthropic", defaultModel: "claude-sonnet-4-6" },
            { id: "openai_main", type: "openai", defaultModel: "gpt-4o" },
            { id: "azure_gpt", type: "litellm", defaultModel: "azure/gpt-4" }
          ])
          for (const id of ["claude_main", "openai_main", "azure_gpt"]) {
            yield* server.enqueue(Reply.scripted({ text: `hello from ${id}` }))
            const llm = yield* ProviderRegistry.get(id)
            const reply = yield* llm.complete(ask("Hi"))
            expect(reply.content).toBe(`hello from ${id}`)
            expect(reply.providerId).toBe(id)
          }
          const [claude, openai, azure] = yield* server.requests
          expect(claude!.path).toBe("/v1/messages")
          expect(Object.values(claude!.headers).some((value) => value.includes(ANTHROPIC_KEY))).toBe(true)
          expect(claude!.body).toMatchObject({ model: "claude-sonnet-4-6" })
          expect(openai).toMatchObject({
            path: "/v1/chat/completions",
            headers: { authorization: `Bearer ${OPENAI_KEY}`, "openai-organization": "org-test" }
          })
          expect(openai!.body).toMatchObject({ model: "gpt-4o" })
          expect(azure).toMatchObject({
            path: "/openai/deployments/gpt-4/chat/completions",
            query: { "api-version": "2024-10-21" },
            headers: { "api-key": AZURE_KEY }
          })
        })
      ))

    it.scoped("an agent's model, max_tokens, temperature and system reach the wire; a request's own win", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          expect(yield* ProviderRegistry.agents).toEqual([
            "planner",
            "coder"
          ])
          const planner = yield* ProviderRegistry.getForAgent("planner")
          const coder = yield* ProviderRegistry.getForAgent("coder")
          expect(planner).toMatchObject({ providerId: "claude_main", providerType: "anthropic" })
          expect(planner.defaultModel).toBe("claude-opus-4-1")
          expect(coder).toMatchObject({ providerId: "openai_main", defaultModel: "gpt-4o-mini" })

          const fromPlanner = yield* planner.complete(ask("Plan a trip"))
          yield* Response.collect(coder.stream(ask("Write a function")))
          yield* planner.complete(ask("Quick", { maxTokens: 10, system: "Be terse.", model: "claude-haiku-4-5" }))
          expect(fromPlanner.providerId).toBe("claude_main")

          const [first, second, third] = yield* server.requests
          expect(first!.body).toMatchObject({
            model: "claude-opus-4-1",
            max_tokens: 2048,
            temperature: 0.2,
            system: "You plan work in small steps."
          })
          expect(second!.body).toMatchObject({
            model: "gpt-4o-mini",
            max_completion_tokens: 512,
            stream: true,
            messages: [{ role: "system", content: "You write TypeScript." }, {
              role: "user",
              content: "Write a function"
            }]
          })
          expect(third!.body).toMatchObject({
            model: "claude-haiku-4-5",
            max_tokens: 10,
            temperature: 0.2,
            system: "Be terse."
          })

          // The usage goes to the provider
          const claude = yield* ProviderRegistry.get("claude_main")
          const usage = yield* claude.usage
          expect(usage.calls).toBe(2)
          expect(Object.keys(usage.byModel).sort()).toEqual(["claude-haiku-4-5", "claude-opus-4-1"])
          expect(yield* planner.usage).toEqual(usage)
        })
      ))

    it.scoped("ProviderRegistry.llm and .agent let a program written against LLM run unchanged", () =>
      withRegistry(() =>
        Effect.gen(function*() {
          const program = Effect.gen(function*() {
            const llm = yield* LLM.LLM
            const reply = yield* LLM.complete({ messages: [Message.user("Say hi")] })
            const streamed = yield* Response.collect(LLM.stream({ messages: [Message.user("Say hi")] }))
            return { providerId: llm.providerId, content: reply.content, streamed: streamed.content }
          })
          const results = []
          for (const id of ["claude_main", "openai_main", "azure_gpt"]) {
            results.push(yield* program.pipe(Effect.provide(ProviderRegistry.llm(id))))
          }
          for (const id of ["planner", "coder"]) {
            results.push(yield* program.pipe(Effect.provide(ProviderRegistry.agent(id))))
          }
          const answer = "Hello from FakeProviderServer"
          expect(results).toEqual([
            { providerId: "claude_main", content: answer, streamed: answer },
            { providerId: "openai_main", content: answer, streamed: answer },
            { providerId: "azure_gpt", content: answer, streamed: answer },
            { providerId: "claude_main", content: answer, streamed: answer },
            { providerId: "openai_main", content: answer, streamed: answer }
          ])
        })
      ))

    it.scoped("an unknown provider or agent lists the known ones", () =>
      withRegistry(() =>
        Effect.gen(function*() {
          const provider = yield* Effect.flip(ProviderRegistry.get("claude"))
          expect(provider).toBeInstanceOf(ProviderRegistry.UnknownProviderError)
          expect(provider.message).toBe(
            "unknown provider \"claude\"; known providers: claude_main, openai_main, azure_gpt"
          )
          const agent = yield* Effect.flip(ProviderRegistry.getForAgent("reviewer"))
          expect(agent).toMatchObject({ _tag: "UnknownAgentError", id: "reviewer", known: ["planner", "coder"] })
          expect(agent.message).toBe("unknown agent \"reviewer\"; known agents: planner, coder")
          const fromLayer = yield* Effect.flip(LLM.usage.pipe(Effect.provide(ProviderRegistry.llm("nope"))))
          expect(fromLayer._tag).toBe("UnknownProviderError")
          const fromAgent = yield* Effect.flip(LLM.usage.pipe(Effect.provide(ProviderRegistry.agent("nope"))))
          expect(fromAgent._tag).toBe("UnknownAgentError")
        })
      ))

    it.scoped("register adds a provider built elsewhere", () =>
      withRegistry(() =>
        Effect.gen(function*() {
          const mock = yield* MockLLM.make([MockLLM.text("mocked", { usage: { inputTokens: 3, outputTokens: 2 } })], {
            providerId: "mock"
          })
          yield* ProviderRegistry.register("mock", mock)
          expect((yield* ProviderRegistry.list).map((p) => [p.id, p.type])).toEqual([
            ["claude_main", "anthropic"],
            ["openai_main", "openai"],
            ["azure_gpt", "litellm"],
            ["mock", "mock"]
          ])
          const reply = yield* LLM.complete(ask("x")).pipe(Effect.provide(ProviderRegistry.llm("mock")))
          expect(reply.content).toBe("mocked")
          const total = yield* ProviderRegistry.totalUsage
          expect(total).toMatchObject({ calls: 1, inputTokens: 3, outputTokens: 2, unpricedCalls: 1 })
        })
      ))
  })

  describe("usage", () => {
    it.scoped("totalUsage is the sum of the providers' usage after concurrent calls on several providers", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          yield* server.setHandler(() =>
            Reply.scripted({ text: "ok", usage: { inputTokens: 100, outputTokens: 20, cacheReadTokens: 40 } })
          )
          const registry = yield* ProviderRegistry.ProviderRegistry
          const calls: Array<Effect.Effect<unknown, unknown>> = []
          const on = (llm: LLM.Service, times: number) => {
            for (let i = 0; i < times; i++) {
              calls.push(i % 2 === 0 ? llm.complete(ask(`call ${i}`)) : Response.collect(llm.stream(ask(`call ${i}`))))
            }
          }
          on(yield* registry.get("claude_main"), 4)
          on(yield* registry.get("openai_main"), 3)
          on(yield* registry.get("azure_gpt"), 3)
          on(yield* registry.getForAgent("planner"), 2)
          on(yield* registry.getForAgent("coder"), 2)
          yield* Effect.all(calls, { concurrency: "unbounded", discard: true })

          const each = yield* Effect.forEach(
            ["claude_main", "openai_main", "azure_gpt"],
            (id) => Effect.flatMap(registry.get(id), (llm) => llm.usage)
          )
          expect(each.map((u) => u.calls)).toEqual([6, 5, 3])
          const total = yield* registry.totalUsage
          expect(total).toEqual(each.reduce(Usage.combine, Usage.empty))
          expect(total).toMatchObject({
            calls: 14,
            failures: 0,
            inputTokens: 1400,
            outputTokens: 280,
            cacheReadTokens: 560,
            unpricedCalls: 0
          })
          expect(total.costUsd).toBeCloseTo(each.reduce((sum, u) => sum + u.costUsd, 0), 12)
          expect(total.costUsd).toBeGreaterThan(0)

          const summary = yield* registry.usageSummary
          expect(summary.total).toEqual(total)
          expect(summary.providers.map((p) => [p.id, p.usage.calls])).toEqual([
            ["claude_main", 6],
            ["openai_main", 5],
            ["azure_gpt", 3]
          ])
          expect(summary.models.map((m) => `${m.provider} ${m.model} ${m.calls}`).sort()).toEqual([
            "azure_gpt azure/gpt-4 3",
            "claude_main claude-opus-4-1 2",
            "claude_main claude-sonnet-4-6 4",
            "openai_main gpt-4o 3",
            "openai_main gpt-4o-mini 2"
          ])

          yield* registry.resetAllUsage
          expect(yield* registry.totalUsage).toEqual(Usage.empty)
        })
      ))

    it.scoped("usageSummary: per provider and per model, with a readable table", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          yield* server.enqueue(
            Reply.scripted({ text: "a", usage: { inputTokens: 1000, outputTokens: 100, cacheReadTokens: 200 } }),
            Reply.scripted({ text: "b", usage: { inputTokens: 500, outputTokens: 50, cacheWriteTokens: 100 } }),
            Reply.scripted({ text: "c", usage: { inputTokens: 10, outputTokens: 5 } }),
            Reply.openaiError(500, { message: "The server had an error", type: "server_error" })
          )
          const claude = yield* ProviderRegistry.get("claude_main")
          const openai = yield* ProviderRegistry.get("openai_main")
          yield* claude.complete(ask("1"))
          yield* claude.complete(ask("2", { model: "claude-opus-4-1" }))
          yield* openai.complete(ask("3", { model: "my-finetune" }))
          yield* Effect.flip(openai.complete(ask("4")))
          const summary = yield* ProviderRegistry.usageSummary
          expect(summary.providers.map((p) => p.usage.costUsd)).toEqual([
            expect.closeTo((800 * 3 + 200 * 0.3 + 100 * 15) / 1e6 + (400 * 15 + 100 * 18.75 + 50 * 75) / 1e6, 12),
            0,
            0
          ])
          expect(summary.models).toContainEqual(
            expect.objectContaining({ provider: "openai_main", model: "my-finetune", calls: 1, unpricedCalls: 1 })
          )
          expect(summary.table).toBe(
            [
              "provider / model         calls  failures  input  cache read  cache write  output       cost  unpriced  unmetered",
              "-----------------------  -----  --------  -----  ----------  -----------  ------  ---------  --------  ---------",
              "claude_main (anthropic)      2         0   1500         200          100     150  $0.015585         0          0",
              "  claude-sonnet-4-6          1         0   1000         200            0     100  $0.003960         0          0",
              "  claude-opus-4-1            1         0    500           0          100      50  $0.011625         0          0",
              "openai_main (openai)         2         1     10           0            0       5  $0.000000         1          0",
              "  my-finetune                1         0     10           0            0       5  $0.000000         1          0",
              "  gpt-4o                     1         1      0           0            0       0  $0.000000         0          0",
              "azure_gpt (litellm)          0         0      0           0            0       0  $0.000000         0          0",
              "-----------------------  -----  --------  -----  ----------  -----------  ------  ---------  --------  ---------",
              "total                        4         1   1510         200          100     155  $0.015585         1          0"
            ].join("\n")
          )
        })
      ))
  })

  describe("retry, request_timeout, circuit_breaker and fallbacks from the config (TestClock)", () => {
    it.scoped("retry on a provider: a 429 with retry-after: 2, then an answer after 2 s, in exactly 2 requests", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          yield* server.enqueue(
            Reply.openaiError(429, { message: "Slow down", type: "requests", code: "rate_limit_exceeded" }, {
              "retry-after": "2"
            }),
            Reply.scripted({ text: "after the wait" })
          )
          const openai = yield* ProviderRegistry.get("openai_main")
          const start = yield* TestClock.currentTimeMillis
          const fiber = yield* Effect.fork(openai.complete(ask("Hi")))
          yield* awaitRequests(server, 1)
          yield* awaitSleepAt(start + 2_000)
          yield* TestClock.adjust("1999 millis")
          yield* settle
          expect(yield* server.requests).toHaveLength(1)
          yield* TestClock.adjust("1 millis")
          const reply = yield* Fiber.join(fiber)
          expect(reply).toMatchObject({ content: "after the wait", providerId: "openai_main" })
          expect(yield* server.requests).toHaveLength(2)
          expect(yield* openai.usage).toMatchObject({ calls: 2, failures: 1 })
        }), {
        text: resilientYaml({
          openai_main: "retry: { max_retries: 3, base_delay: 500 millis }",
          claude_main: "retry: false"
        })
      }))

    it.scoped("retry: false gives the error after 1 request", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          yield* server.enqueue(
            Reply.anthropicError(429, "rate_limit_error", "Number of requests has exceeded your rate limit", {
              "retry-after": "2"
            }),
            Reply.scripted({ text: "never" })
          )
          const claude = yield* ProviderRegistry.get("claude_main")
          const error = yield* Effect.flip(claude.complete(ask("Hi")))
          expect(error._tag).toBe("RateLimitError")
          expect(yield* paths(server)).toEqual([ANTHROPIC_PATH])
        }), { text: resilientYaml({ claude_main: "retry: false" }) }))

    it.scoped("a provider whose endpoint answers 503 is answered by its fallback, which says so; usage is counted once", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          yield* server.setHandler((request) =>
            request.path === ANTHROPIC_PATH
              ? unavailable.anthropic
              : Reply.scripted({ text: "from openai", usage: { inputTokens: 10, outputTokens: 5 } })
          )
          const registry = yield* ProviderRegistry.ProviderRegistry
          const claude = yield* registry.get("claude_main")
          const openai = yield* registry.get("openai_main")
          // Still claude_main to its users
          expect(claude).toMatchObject({ providerId: "claude_main", providerType: "anthropic" })
          expect(claude.defaultModel).toBe("claude-sonnet-4-6")

          const reply = yield* claude.complete(ask("Hi", { model: "claude-opus-4-1" }))
          expect(reply).toMatchObject({ content: "from openai", providerId: "openai_main", model: "gpt-4o" })
          const streamed = yield* Response.collect(claude.stream(ask("Hi")))
          expect(streamed).toMatchObject({ content: "from openai", providerId: "openai_main" })
          const requests = yield* server.requests
          expect(requests.map((r) => r.path)).toEqual([ANTHROPIC_PATH, OPENAI_PATH, ANTHROPIC_PATH, OPENAI_PATH])
          // The fallback answers with its own default model
          expect(requests[1]!.body).toMatchObject({ model: "gpt-4o" })

          // Concurrent calls on the chain and on the fallback itself
          yield* Effect.all(
            [
              claude.complete(ask("1")),
              openai.complete(ask("2")),
              claude.complete(ask("3")),
              openai.complete(ask("4"))
            ],
            { concurrency: "unbounded", discard: true }
          )
          const claudeUsage = yield* claude.usage
          const openaiUsage = yield* openai.usage
          expect(claudeUsage).toMatchObject({ calls: 4, failures: 4, inputTokens: 0 })
          expect(openaiUsage).toMatchObject({ calls: 6, failures: 0, inputTokens: 60, outputTokens: 30 })
          const total = yield* registry.totalUsage
          const bases = yield* Effect.forEach(
            ["claude_main", "openai_main", "azure_gpt"],
            (id) => Effect.flatMap(registry.get(id), (llm) => llm.usage)
          )
          expect(total).toEqual(bases.reduce(Usage.combine, Usage.empty))
          expect(total).toMatchObject({ calls: 10, failures: 4, inputTokens: 60, outputTokens: 30 })
          expect((yield* registry.usageSummary).total).toEqual(total)

          // resetUsage of the chain resets its own provider only
          yield* claude.resetUsage
          expect((yield* claude.usage).calls).toBe(0)
          expect((yield* openai.usage).calls).toBe(6)
        }), { text: resilientYaml({ claude_main: "fallbacks: [openai_main]" }) }))

    it.scoped("an agent's own fallbacks and retry replace its provider's; an agent without keeps them", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          yield* server.setHandler((request) =>
            request.path === ANTHROPIC_PATH
              ? unavailable.anthropic
              : Reply.scripted({ text: `from ${request.path === AZURE_PATH ? "azure" : "openai"}` })
          )
          // planner: no retry, azure_gpt instead of openai_main
          const planner = yield* ProviderRegistry.getForAgent("planner")
          expect(planner).toMatchObject({ providerId: "claude_main", defaultModel: "claude-opus-4-1" })
          const fromPlanner = yield* planner.complete(ask("Plan"))
          expect(fromPlanner).toMatchObject({ content: "from azure", providerId: "azure_gpt" })
          const plannerRequests = yield* server.requests
          expect(plannerRequests.map((r) => r.path)).toEqual([ANTHROPIC_PATH, AZURE_PATH])
          // The agent's defaults reach its provider
          expect(plannerRequests[0]!.body).toMatchObject({ model: "claude-opus-4-1", max_tokens: 1024 })

          // scout: claude_main's own settings, 2 retries 1 s then 2 s apart, then openai_main
          yield* server.reset
          yield* server.setHandler((request) =>
            request.path === ANTHROPIC_PATH ? unavailable.anthropic : Reply.scripted({ text: "from openai" })
          )
          const scout = yield* ProviderRegistry.getForAgent("scout")
          const start = yield* TestClock.currentTimeMillis
          const fiber = yield* Effect.fork(scout.complete(ask("Look around")))
          yield* awaitRequests(server, 1)
          yield* awaitSleepAt(start + 1_000)
          yield* TestClock.adjust("1 second")
          yield* awaitRequests(server, 2)
          yield* awaitSleepAt(start + 3_000)
          yield* TestClock.adjust("2 seconds")
          expect(yield* Fiber.join(fiber)).toMatchObject({ content: "from openai", providerId: "openai_main" })
          expect(yield* paths(server)).toEqual([ANTHROPIC_PATH, ANTHROPIC_PATH, ANTHROPIC_PATH, OPENAI_PATH])

          // coder: a retry of its own on a provider with retry: false
          yield* server.reset
          yield* server.enqueue(unavailable.openai, Reply.scripted({ text: "second try" }), unavailable.openai)
          const coder = yield* ProviderRegistry.getForAgent("coder")
          const later = yield* TestClock.currentTimeMillis
          const coding = yield* Effect.fork(coder.complete(ask("Code")))
          yield* awaitRequests(server, 1)
          yield* awaitSleepAt(later + 1_000)
          yield* TestClock.adjust("1 second")
          expect(yield* Fiber.join(coding)).toMatchObject({ content: "second try", providerId: "openai_main" })
          const openai = yield* ProviderRegistry.get("openai_main")
          expect((yield* Effect.flip(openai.complete(ask("Direct"))))._tag).toBe("ProviderUnavailableError")
          expect(yield* paths(server)).toEqual([OPENAI_PATH, OPENAI_PATH, OPENAI_PATH])
        }), {
        text: resilientYaml(
          {
            claude_main: "retry: { max_retries: 2, base_delay: 1 second, jitter: false }\nfallbacks: [openai_main]",
            openai_main: "retry: false"
          },
          `
planner: { provider: claude_main, model: claude-opus-4-1, max_tokens: 1024, retry: false, fallbacks: [azure_gpt] }
scout: { provider: claude_main }
coder: { provider: openai_main, retry: { max_retries: 1, base_delay: 1 second, jitter: false } }
`
        )
      }))

    it.scoped("a breaker with failure_threshold: 2 opens after 2 failures and refuses the third call without a request", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          yield* server.setHandler((request) =>
            request.path === OPENAI_PATH ? unavailable.openai : unavailable.anthropic
          )
          const openai = yield* ProviderRegistry.get("openai_main")
          for (let i = 0; i < 2; i++) {
            expect((yield* Effect.flip(openai.complete(ask(`${i}`))))._tag).toBe("ProviderUnavailableError")
          }
          const refused = yield* Effect.flip(openai.complete(ask("third")))
          expect(refused).toMatchObject({ _tag: "CircuitOpenError", provider: "openai_main" })
          expect(refused.message).toBe("openai_main: circuit breaker open; the next trial call in 30s")
          expect(yield* paths(server)).toEqual([OPENAI_PATH, OPENAI_PATH])

          // One breaker per provider: its agents and its role as a fallback see the same state
          const coder = yield* ProviderRegistry.getForAgent("coder")
          expect((yield* Effect.flip(coder.complete(ask("agent"))))._tag).toBe("CircuitOpenError")
          const claude = yield* ProviderRegistry.get("claude_main")
          expect((yield* Effect.flip(claude.complete(ask("chain"))))._tag).toBe("CircuitOpenError")
          expect(yield* paths(server)).toEqual([OPENAI_PATH, OPENAI_PATH, ANTHROPIC_PATH])
          // A refused call reaches no provider and counts nowhere
          expect(yield* openai.usage).toMatchObject({ calls: 2, failures: 2 })

          // After reset_timeout one trial goes through; its success closes the breaker
          yield* TestClock.adjust("30 seconds")
          yield* server.setHandler(() => Reply.scripted({ text: "back" }))
          expect((yield* openai.complete(ask("trial"))).content).toBe("back")
          expect((yield* coder.complete(ask("again"))).content).toBe("back")
          expect(yield* openai.usage).toMatchObject({ calls: 4, failures: 2 })
        }), {
        text: resilientYaml(
          {
            claude_main: "fallbacks: [openai_main]",
            openai_main: "circuit_breaker: { failure_threshold: 2, reset_timeout: 30 seconds }"
          },
          "coder: { provider: openai_main, model: gpt-4o-mini }"
        )
      }))

    it.scoped("retry + circuit_breaker + fallbacks: an open breaker sends the call to the fallback at once, with no wait for reset_timeout", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          yield* server.setHandler((request) =>
            request.path === ANTHROPIC_PATH ? unavailable.anthropic : Reply.scripted({ text: "from openai" })
          )
          const claude = yield* ProviderRegistry.get("claude_main")
          const start = yield* TestClock.currentTimeMillis
          const fiber = yield* Effect.fork(claude.complete(ask("Hi")))
          // The 503 opens the breaker (failure_threshold: 1); the retry waits its first backoff
          yield* awaitRequests(server, 1)
          yield* awaitSleepAt(start + 1_000)
          yield* TestClock.adjust("1 second")
          // The breaker refuses the retry: that is not retried, the fallback answers with no more waiting
          const reply = yield* awaitDone("the call to reach the fallback without moving the clock", fiber)
          expect(reply).toMatchObject({ content: "from openai", providerId: "openai_main" })
          expect(yield* paths(server)).toEqual([ANTHROPIC_PATH, OPENAI_PATH])
          // While the breaker is open, a call goes straight to the fallback
          const again = yield* awaitDone("a call on an open breaker", yield* Effect.fork(claude.complete(ask("Again"))))
          expect(again).toMatchObject({ content: "from openai", providerId: "openai_main" })
          expect(yield* paths(server)).toEqual([ANTHROPIC_PATH, OPENAI_PATH, OPENAI_PATH])
          expect(yield* TestClock.currentTimeMillis).toBe(start + 1_000)
        }), {
        text: resilientYaml({
          claude_main: [
            "retry: { max_retries: 3, base_delay: 1 second, jitter: false }",
            "circuit_breaker: { failure_threshold: 1, reset_timeout: 30 seconds }",
            "fallbacks: [openai_main]"
          ].join("\n")
        })
      }))

    it.scoped("retry: a stream that fails after emitting delivers its error at once, not retried and not a backoff late", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          yield* server.enqueue(
            Reply.scripted({ text: ["one ", "two ", "three"] }, {
              errorAfterEvents: { count: 4, type: "server_error", message: "Overloaded" }
            }),
            Reply.scripted({ text: "never" })
          )
          const openai = yield* ProviderRegistry.get("openai_main")
          const start = yield* TestClock.currentTimeMillis
          const fiber = yield* Effect.fork(Stream.runCollect(Stream.either(openai.stream(ask("Hi")))))
          const out = Chunk.toReadonlyArray(yield* awaitDone("the stream's error, without moving the clock", fiber))
          const last = out[out.length - 1]
          expect(out.length).toBeGreaterThan(1)
          expect(out.slice(0, -1).every(Either.isRight)).toBe(true)
          expect(last !== undefined && Either.isLeft(last) && last.left._tag).toBe("ProviderUnavailableError")
          expect(yield* server.requests).toHaveLength(1)
          expect(yield* TestClock.currentTimeMillis).toBe(start)
        }), { text: resilientYaml({ openai_main: "retry: { max_retries: 3, base_delay: 1 second, jitter: false }" }) }))

    it.scoped("request_timeout bounds each attempt; the provider's own timeout stays its HTTP client's", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          yield* server.enqueue(Reply.hang, Reply.scripted({ text: "in time" }))
          const azure = yield* ProviderRegistry.get("azure_gpt")
          const start = yield* TestClock.currentTimeMillis
          const fiber = yield* Effect.fork(azure.complete(ask("Hi")))
          yield* awaitRequests(server, 1)
          yield* awaitSleepAt(start + 5_000)
          yield* TestClock.adjust("5 seconds")
          // The timeout (retryable) is retried after 1 s
          yield* awaitSleepAt(start + 6_000)
          yield* TestClock.adjust("1 second")
          expect((yield* Fiber.join(fiber)).content).toBe("in time")
          expect(yield* azure.usage).toMatchObject({ calls: 2, failures: 1 })
        }), {
        text: resilientYaml({
          azure_gpt:
            "timeout: 10 minutes\nrequest_timeout: 5 seconds\nretry: { max_retries: 1, base_delay: 1 second, jitter: false }"
        })
      }))
  })

  describe("configuration problems found while building", () => {
    it.scoped("a litellm model with no known prefix and no base_url, a type with no factory", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.FakeProviderServer
        const config = yield* configFor(
          server,
          `
providers:
  claude_main: { api_key: k, default_model: claude-sonnet-4-6 }
  odd: { type: litellm, default_model: nowhere/model-1 }
  openai_main: { api_key: k, default_model: gpt-4o }
`
        )
        const error = yield* Effect.flip(
          Layer.build(ProviderRegistry.layerFromConfig(config, { factories: { openai: undefined } }))
        )
        expect(error).toBeInstanceOf(ProvidersConfig.ProvidersConfigError)
        expect(error.message).toBe(
          "Invalid provider configuration in test/providers.yaml (2 problems):\n" +
            "  - providers.odd.default_model: \"nowhere/model-1\" names no known LiteLLM provider prefix (" +
            Object.keys(LiteLLM.routes).map((p) => `${p}/`).join(", ") +
            "); set base_url to send a bare model name to any OpenAI-compatible server\n" +
            "  - providers.openai_main.type: no factory builds a provider of type openai"
        )
      }))

    it.scoped("layerFromFile reports the file's problems and the registry's (LiteLLM prefix, factory) in one error, each at its line", () =>
      Effect.gen(function*() {
        const text = [
          "providers:",
          "  claude_main:",
          "    api_key: k",
          "    default_model: claude-sonnet-4-6",
          "    max_tokens: lots",
          "  odd:",
          "    type: litellm",
          "    default_model: nowhere/model-1",
          "  openai_main: { api_key: k, default_model: gpt-4o }",
          "agents:",
          "  planner: { provider: claude_mian }",
          ""
        ].join("\n")
        const files = FileSystem.layerNoop({ readFileString: () => Effect.succeed(text) })
        const error = yield* Effect.flip(Layer.build(
          ProviderRegistry.layerFromFile("config/providers.yaml", { factories: { openai: undefined } }).pipe(
            Layer.provide(files)
          )
        ))
        expect(error).toBeInstanceOf(ProvidersConfig.ProvidersConfigError)
        expect(error.message).toBe(
          "Invalid provider configuration in config/providers.yaml (4 problems):\n" +
            "  - config/providers.yaml:5:5: providers.claude_main.max_tokens: expected a positive integer, got \"lots\"\n" +
            "  - config/providers.yaml:8:5: providers.odd.default_model: \"nowhere/model-1\" names no known LiteLLM " +
            "provider prefix (" + Object.keys(LiteLLM.routes).map((p) => `${p}/`).join(", ") +
            "); set base_url to send a bare model name to any OpenAI-compatible server\n" +
            // No `type:` written: the problem is placed at the provider
            "  - config/providers.yaml:9:3: providers.openai_main.type: no factory builds a provider of type openai\n" +
            "  - config/providers.yaml:11:14: agents.planner.provider: agent planner names provider \"claude_mian\", " +
            "which is not defined; defined providers: claude_main, odd, openai_main"
        )
      }))

    it.scoped("a config built in code whose fallbacks name no provider", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.FakeProviderServer
        const config = yield* configFor(server)
        const edited: ProvidersConfig.ProvidersConfig = {
          ...config,
          providers: {
            ...config.providers,
            claude_main: { ...config.providers.claude_main!, fallbacks: ["openai_main", "gone"] }
          },
          agents: { planner: { ...config.agents.planner!, fallbacks: ["elsewhere"] } }
        }
        const error = yield* Effect.flip(Layer.build(ProviderRegistry.layerFromConfig(edited)))
        expect(error.message).toBe(
          "Invalid provider configuration in test/providers.yaml (2 problems):\n" +
            "  - providers.claude_main.fallbacks: provider \"gone\" is not defined\n" +
            "  - agents.planner.fallbacks: provider \"elsewhere\" is not defined"
        )
      }))

    it.scoped("clamp_max_tokens: a provider configured to clamp sends maxTokens cut to what fits the window", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.FakeProviderServer
        yield* server.reset
        yield* server.enqueue(Reply.scripted({ text: "clamped" }), Reply.scripted({ text: "unclamped" }))
        const document = (clamp: boolean): ProvidersConfig.Document => ({
          providers: {
            openai_main: {
              api_key: "${OPENAI_API_KEY}",
              default_model: "gpt-4o",
              base_url: "${FAKE_URL}/v1",
              ...(clamp ? { clamp_max_tokens: true } : {})
            }
          }
        })
        const call = (clamp: boolean) =>
          Effect.exit(LLM.complete(ask("Hi", { maxTokens: 1_000_000 }))).pipe(
            Effect.provide(ProviderRegistry.llm("openai_main")),
            Effect.provide(ProviderRegistry.layerFromConfig(document(clamp))),
            Effect.withConfigProvider(envFor(server))
          )
        expect(Exit.isSuccess(yield* call(true))).toBe(true)
        const [request] = yield* server.requests
        const sent = request!.body as { max_completion_tokens?: number; max_tokens?: number }
        const maxTokens = sent.max_completion_tokens ?? sent.max_tokens ?? 0
        // gpt-4o's window is 128,000 tokens: what is left after the prompt's few tokens
        expect(maxTokens).toBeGreaterThan(127_900)
        expect(maxTokens).toBeLessThan(128_000)
        // Without it, the request does not fit and is refused before any request
        const refused = yield* call(false)
        expect(Exit.isFailure(refused) && Cause.squash(refused.cause)).toBeInstanceOf(LLMError.ContextLengthError)
        expect(yield* server.requests).toHaveLength(1)
      }))

    it.scoped("layerFromConfig takes the document as written in code, decoded with the same checks; bad input is a ProvidersConfigError", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.FakeProviderServer
        yield* server.reset
        yield* server.enqueue(Reply.scripted({ text: "from a document" }))
        // Written like the YAML: snake_case keys, ${VAR}s, durations as text, retry settings
        const reply = yield* LLM.complete(ask("Hi")).pipe(
          Effect.provide(ProviderRegistry.llm("openai_main")),
          Effect.provide(ProviderRegistry.layerFromConfig({
            providers: {
              openai_main: {
                api_key: "${OPENAI_API_KEY}",
                default_model: "gpt-4o",
                base_url: "${FAKE_URL}/v1",
                timeout: "30 seconds",
                retry: { max_retries: 2, base_delay: "1 second" }
              }
            },
            agents: { coder: { provider: "openai_main", max_tokens: 512 } }
          })),
          Effect.withConfigProvider(envFor(server))
        )
        expect(reply).toMatchObject({ content: "from a document", providerId: "openai_main" })
        const [request] = yield* server.requests
        expect(request!.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`)

        const bad = yield* Layer.build(ProviderRegistry.layerFromConfig({
          providers: { a: { api_key: "k", default_model: "gpt-4o", max_tokens: "lots" } },
          agents: { planner: { provider: "b" } }
        })).pipe(Effect.exit)
        expect(Exit.isFailure(bad) && Cause.isFailType(bad.cause)).toBe(true)
        const error = yield* Effect.flip(Layer.build(ProviderRegistry.layerFromConfig({
          providers: { a: { api_key: "k", default_model: "gpt-4o", max_tokens: "lots" } },
          agents: { planner: { provider: "b" } }
        })))
        expect(error).toBeInstanceOf(ProvidersConfig.ProvidersConfigError)
        expect(error.message).toBe(
          "Invalid provider configuration in <inline> (2 problems):\n" +
            "  - providers.a.max_tokens: expected a positive integer, got \"lots\"\n" +
            "  - agents.planner.provider: agent planner names provider \"b\", which is not defined; defined providers: a"
        )
        // Not even an object: still a ProvidersConfigError, never a defect
        const nothing = yield* Effect.flip(
          Layer.build(ProviderRegistry.layerFromConfig(undefined as unknown as ProvidersConfig.Document))
        )
        expect(nothing.message).toBe(
          "Invalid provider configuration in <inline> (1 problem):\n" +
            "  - the configuration is empty; expected a mapping with providers (and optionally agents)"
        )
      }))

    it.scoped("layerFromFile reads the file through FileSystem", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.FakeProviderServer
        yield* server.reset
        const files = FileSystem.layerNoop({
          readFileString: (path) =>
            path === "providers.yaml"
              ? Effect.succeed(yaml)
              : Effect.succeed("providers:\n  a: { default_model: gpt-4o, max_tokens: lots, api_key: k }\n")
        })
        const names = yield* ProviderRegistry.list.pipe(
          Effect.provide(ProviderRegistry.layerFromFile("providers.yaml").pipe(Layer.provide(files))),
          Effect.map((list) => list.map((p) => p.id))
        )
        expect(names).toEqual(["claude_main", "openai_main", "azure_gpt"])
        const error = yield* Effect.flip(
          Layer.build(ProviderRegistry.layerFromFile("bad.yaml").pipe(Layer.provide(files)))
        )
        expect(error.message).toBe(
          "Invalid provider configuration in bad.yaml (1 problem):\n" +
            "  - bad.yaml:2:31: providers.a.max_tokens: expected a positive integer, got \"lots\""
        )
      }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(
        new Map([
          ["ANTHROPIC_API_KEY", ANTHROPIC_KEY],
          ["OPENAI_API_KEY", OPENAI_KEY],
          ["AZURE_API_KEY", AZURE_KEY],
          ["FAKE_URL", "http://127.0.0.1:9"]
        ])
      ))))
  })

  describe("secrets", () => {
    it.scoped("a recognisable key never shows in a summary, a list, an error or inspect output", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          yield* server.enqueue(
            Reply.scripted({ text: "a" }),
            Reply.anthropicError(401, "authentication_error", `invalid x-api-key ${ANTHROPIC_KEY}`)
          )
          const claude = yield* ProviderRegistry.get("claude_main")
          yield* claude.complete(ask("x"))
          const error = yield* Effect.flip(claude.complete(ask("y")))
          expect(error._tag).toBe("AuthenticationError")
          const summary = yield* ProviderRegistry.usageSummary
          const config = yield* configFor(server)
          for (const value of [summary, summary.table, yield* ProviderRegistry.list, error, config, claude]) {
            expect(hasSecret(value)).toBe(false)
          }
        })
      ))
  })
})

describe("ProviderRegistry", () => {
  describe("connectivity (TestClock)", () => {
    // Anthropic and Azure never answer; OpenAI refuses the key. With Effect's clock frozen, all
    // three requests reaching the server proves the checks run in parallel.
    const faults = (server: FakeProviderServer.Service) =>
      server.setHandler((request) =>
        request.path === "/v1/messages" || request.path.includes("/deployments/")
          ? Reply.hang
          : Reply.openaiError(401, {
            // As OpenAI does, the reply repeats (part of) the key it refused
            message: `Incorrect API key provided: ${OPENAI_KEY}.`,
            type: "invalid_request_error",
            code: "invalid_api_key"
          })
      )

    const allAsked = (server: FakeProviderServer.Service) =>
      awaitTrue(Effect.map(server.requests, (requests) => requests.length === 3), "3 requests")

    it.scoped("checkConnectivity asks every provider a 1-token question in parallel and reports every result", () =>
      withRegistry((server) =>
        Effect.gen(function*() {
          yield* faults(server)
          const fiber = yield* Effect.fork(ProviderRegistry.checkConnectivity({ timeout: "600 millis" }))
          yield* allAsked(server)
          expect(yield* server.requests).toHaveLength(3)
          yield* TestClock.adjust("600 millis")
          const results = yield* Fiber.join(fiber)
          expect(results.map((r) => [r.id, r.ok, r.error?._tag])).toEqual([
            ["claude_main", false, "TimeoutError"],
            ["openai_main", false, "AuthenticationError"],
            ["azure_gpt", false, "TimeoutError"]
          ])
          expect(results[2]!.error!.message).toBe("azure_gpt: no answer to the connectivity check within 600ms")
          for (const request of yield* server.requests) {
            const body = request.body as any
            expect(body.max_tokens ?? body.max_completion_tokens).toBe(1)
            expect(JSON.stringify(body.messages)).toContain("ping")
          }
          expect(hasSecret(results)).toBe(false)

          yield* server.reset
          const answered = yield* ProviderRegistry.checkConnectivity({ timeout: "600 millis" })
          expect(answered.map((r) => [r.id, r.ok])).toEqual([["claude_main", true], ["openai_main", true], [
            "azure_gpt",
            true
          ]])
        })
      ).pipe(Effect.provide(FakeProviderServer.layer())))

    it.scoped("validateConnectivity fails the layer with every failed provider, its error tag and message", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.FakeProviderServer
        yield* server.reset
        yield* faults(server)
        const config = yield* configFor(server)
        const fiber = yield* Effect.fork(Effect.flip(
          Effect.scoped(Layer.build(
            ProviderRegistry.layerFromConfig(config, { validateConnectivity: true, connectivityTimeout: "400 millis" })
          )).pipe(Effect.withConfigProvider(envFor(server)))
        ))
        yield* allAsked(server)
        yield* TestClock.adjust("400 millis")
        const error = yield* Fiber.join(fiber)
        expect(error).toBeInstanceOf(ProviderRegistry.ConnectivityError)
        if (error._tag !== "ConnectivityError") return
        expect(error.failures.map((f) => [f.id, f.error._tag])).toEqual([
          ["claude_main", "TimeoutError"],
          ["openai_main", "AuthenticationError"],
          ["azure_gpt", "TimeoutError"]
        ])
        expect(error.message).toBe(
          "3 of 3 providers failed the connectivity check:\n" +
            "  - claude_main: TimeoutError: no answer to the connectivity check within 400ms\n" +
            "  - openai_main: AuthenticationError: HTTP 401 invalid_api_key: Incorrect API key provided: <redacted>.\n" +
            "  - azure_gpt: TimeoutError: no answer to the connectivity check within 400ms"
        )
        expect(error.failures[1]!.error.message).toContain("Incorrect API key provided")
        expect(hasSecret(error)).toBe(false)

        // All answer: the layer builds
        yield* server.reset
        const ok = yield* ProviderRegistry.list.pipe(
          Effect.provide(ProviderRegistry.layerFromConfig(config, { validateConnectivity: true })),
          Effect.withConfigProvider(envFor(server))
        )
        expect(ok).toHaveLength(3)
      }).pipe(Effect.provide(FakeProviderServer.layer())))
  })
})

describe("ProviderRegistry lifetime", () => {
  it.scoped("closing the registry's scope releases every provider: finalizers run, calls in flight end, no socket stays open", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.make()
      const config = yield* configFor(server)
      const released = yield* Ref.make<ReadonlyArray<string>>([])
      // The built-in factories, each provider also registering a finalizer in the scope it is built in
      const counting: ProviderRegistry.Factories = Object.fromEntries(
        Object.entries(ProviderRegistry.factories).map(([type, factory]) => [
          type,
          (provider: ProvidersConfig.Provider) =>
            Effect.tap(
              factory!(provider),
              () => Effect.addFinalizer(() => Ref.update(released, (ids) => [...ids, provider.id]))
            )
        ])
      )
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        ProviderRegistry.layerFromConfig(config, { factories: counting }),
        scope
      ).pipe(Effect.withConfigProvider(envFor(server)))
      const registry = Context.get(context, ProviderRegistry.ProviderRegistry)

      yield* server.enqueue(Reply.hang, Reply.hang, Reply.hang)
      const claude = yield* registry.get("claude_main")
      const openai = yield* registry.get("openai_main")
      const azure = yield* registry.get("azure_gpt")
      const calls = yield* Effect.forEach(
        [claude.complete(ask("x")), Response.collect(openai.stream(ask("x"))), azure.complete(ask("x"))],
        (call) => Effect.fork(Effect.flip(call))
      )
      yield* awaitTrue(Effect.map(server.requests, (requests) => requests.length === 3), "3 requests")
      expect(yield* server.openConnections).toBe(3)
      expect(yield* Ref.get(released)).toEqual([])

      yield* Scope.close(scope, Exit.void)

      expect([...(yield* Ref.get(released))].sort()).toEqual(["azure_gpt", "claude_main", "openai_main"])
      const errors = yield* Effect.forEach(calls, Fiber.join)
      expect(errors.map((e) => [e._tag, e.message])).toEqual(
        ["claude_main", "openai_main", "azure_gpt"].map((id) => [
          "InvalidRequestError",
          `${id}: this provider was released when its ProviderRegistry closed`
        ])
      )
      // The three requests were cut: the server saw each client go away before it answered
      yield* server.awaitAborted(3)
      expect(yield* server.abortedResponses).toBe(3)
      // Node's fetch (undici) may open a fresh idle keep-alive socket after an aborted one, and
      // closes it itself after its keep-alive timeout (about 4 s): no socket stays open.
      // So wait until none is open and none opens again for 200 ms (at most 6 s in all).
      const noneFor200ms = Effect.gen(function*() {
        if ((yield* server.openConnections) !== 0) return false
        yield* realPause(200)
        return (yield* server.openConnections) === 0
      })
      yield* awaitTrue(noneFor200ms, "no open connection for 200 ms", 6_000)

      // What was released is no longer reachable
      expect((yield* Effect.flip(claude.complete(ask("again")))).message).toBe(
        "claude_main: this provider was released when its ProviderRegistry closed"
      )
      expect((yield* Effect.flip(registry.get("claude_main"))).message).toBe(
        "unknown provider \"claude_main\"; no providers are registered"
      )
      expect((yield* Effect.flip(registry.getForAgent("planner"))).message).toBe(
        "unknown agent \"planner\"; no agents are registered"
      )
      expect(yield* registry.totalUsage).toEqual(Usage.empty)
      expect(yield* server.requests).toHaveLength(3)
    }))

  it.scoped("with the built-in factories, calls in flight (complete and stream, with retry) end with the registry", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.make()
      const config = yield* configFor(
        server,
        resilientYaml({ openai_main: "retry: { max_retries: 2, base_delay: 1 second, jitter: false }" })
      )
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(ProviderRegistry.layerFromConfig(config), scope).pipe(
        Effect.withConfigProvider(envFor(server))
      )
      const registry = Context.get(context, ProviderRegistry.ProviderRegistry)
      yield* server.enqueue(Reply.hang, Reply.hang, Reply.hang)
      const claude = yield* registry.get("claude_main")
      const openai = yield* registry.get("openai_main")
      const calls = yield* Effect.forEach(
        [claude.complete(ask("x")), Response.collect(openai.stream(ask("x"))), openai.complete(ask("x"))],
        (call) => Effect.fork(Effect.flip(call))
      )
      yield* awaitTrue(Effect.map(server.requests, (requests) => requests.length === 3), "3 requests")

      yield* Scope.close(scope, Exit.void)

      const errors = yield* Effect.forEach(calls, Fiber.join)
      expect(errors.map((e) => [e._tag, e.message])).toEqual(
        ["claude_main", "openai_main", "openai_main"].map((id) => [
          "InvalidRequestError",
          `${id}: this provider was released when its ProviderRegistry closed`
        ])
      )
      yield* server.awaitAborted(3)
      // Not retried: the release is final
      expect(yield* server.requests).toHaveLength(3)
      expect((yield* Effect.flip(openai.complete(ask("again")))).message).toBe(
        "openai_main: this provider was released when its ProviderRegistry closed"
      )
    }))

  it.scoped("closing the registry's scope ends a call waiting between two retries", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.make()
      yield* server.setHandler(() => unavailable.openai)
      const config = yield* configFor(
        server,
        resilientYaml({ openai_main: "retry: { max_retries: 5, base_delay: 1 minute, jitter: false }" })
      )
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(ProviderRegistry.layerFromConfig(config), scope).pipe(
        Effect.withConfigProvider(envFor(server))
      )
      const openai = yield* Context.get(context, ProviderRegistry.ProviderRegistry).get("openai_main")
      const start = yield* TestClock.currentTimeMillis
      const fiber = yield* Effect.fork(Effect.flip(openai.complete(ask("x"))))
      // The first backoff: base_delay (1 minute), capped by max_delay (30 s by default)
      yield* awaitSleepAt(start + 30_000)
      yield* Scope.close(scope, Exit.void)
      const error = yield* Fiber.join(fiber)
      expect([error._tag, error.message]).toEqual([
        "InvalidRequestError",
        "openai_main: this provider was released when its ProviderRegistry closed"
      ])
      expect(yield* server.requests).toHaveLength(1)
    }))

  it.scoped("a provider is built once, however often it is asked for", () =>
    Effect.gen(function*() {
      const server = yield* FakeProviderServer.make()
      const config = yield* configFor(server)
      const built = yield* Ref.make(0)
      const factories: ProviderRegistry.Factories = Object.fromEntries(
        Object.entries(ProviderRegistry.factories).map(([type, factory]) => [
          type,
          (provider: ProvidersConfig.Provider) => Effect.zipRight(Ref.update(built, (n) => n + 1), factory!(provider))
        ])
      )
      yield* Effect.gen(function*() {
        for (let i = 0; i < 3; i++) {
          yield* ProviderRegistry.get("claude_main")
          yield* ProviderRegistry.getForAgent("planner")
          yield* LLM.LLM.pipe(Effect.provide(ProviderRegistry.llm("openai_main")))
        }
      }).pipe(
        Effect.provide(ProviderRegistry.layerFromConfig(config, { factories })),
        Effect.withConfigProvider(envFor(server))
      )
      expect(yield* Ref.get(built)).toBe(3)
    }))
})
