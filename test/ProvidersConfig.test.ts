import { NodeFileSystem } from "@effect/platform-node"
import * as FileSystem from "@effect/platform/FileSystem"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { inspect } from "node:util"
import * as ProvidersConfig from "../src/ProvidersConfig.js"

const SECRET = "sk-ant-SECRET-7f3a9c2e51d04b8e"
const OPENAI_SECRET = "sk-proj-SECRET-93be41c07a2d"

const env = (vars: Record<string, string>) => ConfigProvider.fromMap(new Map(Object.entries(vars)))

const parse = (text: string, vars: Record<string, string> = {}, source = "test/providers.yaml") =>
  ProvidersConfig.parse(text, source).pipe(Effect.withConfigProvider(env(vars)))

const problems = (text: string, vars: Record<string, string> = {}, source = "test/providers.yaml") =>
  Effect.map(Effect.flip(parse(text, vars, source)), (error) => error.problems)

const full = `
providers:
  claude_main:
    type: anthropic
    api_key: \${ANTHROPIC_API_KEY}
    default_model: claude-sonnet-4-5
    max_tokens: 8192
    timeout: 30 seconds
    pricing:
      claude-sonnet-4-5: { input: 3, output: 15, cache_read: 0.3 }
  openai_main:
    api_key: \${OPENAI_API_KEY}
    default_model: gpt-4o
    base_url: \${OPENAI_BASE_URL:-https://api.openai.com/v1}
    organization: org-123
    project: proj-456
    timeout: 90
  azure_gpt:
    type: litellm
    api_key: \${AZURE_API_KEY}
    default_model: azure/gpt-4
    base_url: https://myorg.openai.azure.com
    api_version: "2024-10-21"
    headers:
      x-team: \${TEAM:-platform}
agents:
  planner:
    provider: claude_main
    model: claude-opus-4-1
    max_tokens: 4096
    temperature: 0.2
    system: |
      You plan work in small steps.
  coder: { provider: openai_main, model: gpt-4o-mini }
`

const fullEnv = { ANTHROPIC_API_KEY: SECRET, OPENAI_API_KEY: OPENAI_SECRET, AZURE_API_KEY: "azure-key-123" }

describe("ProvidersConfig", () => {
  describe("loading", () => {
    it.effect("a config with anthropic, openai and litellm providers and two agents", () =>
      Effect.gen(function*() {
        const config = yield* parse(full, fullEnv)
        expect(config.source).toBe("test/providers.yaml")
        expect(Object.keys(config.providers)).toEqual(["claude_main", "openai_main", "azure_gpt"])
        const { azure_gpt, claude_main, openai_main } = config.providers
        expect(claude_main).toMatchObject({
          id: "claude_main",
          type: "anthropic",
          defaultModel: "claude-sonnet-4-5",
          maxTokens: 8192,
          pricing: { "claude-sonnet-4-5": { input: 3, output: 15, cacheRead: 0.3 } }
        })
        expect(Duration.toMillis(claude_main!.timeout!)).toBe(30_000)
        expect(Redacted.isRedacted(claude_main!.apiKey)).toBe(true)
        expect(Redacted.value(claude_main!.apiKey!)).toBe(SECRET)
        expect(openai_main).toMatchObject({
          id: "openai_main",
          type: "openai",
          defaultModel: "gpt-4o",
          baseUrl: "https://api.openai.com/v1",
          organization: "org-123",
          project: "proj-456"
        })
        expect(Duration.toMillis(openai_main!.timeout!)).toBe(90_000)
        expect(azure_gpt).toMatchObject({ type: "litellm", defaultModel: "azure/gpt-4", apiVersion: "2024-10-21" })
        expect(Redacted.value(azure_gpt!.headers!["x-team"]!)).toBe("platform")
        expect(config.agents).toEqual({
          planner: {
            id: "planner",
            provider: "claude_main",
            model: "claude-opus-4-1",
            maxTokens: 4096,
            temperature: 0.2,
            system: "You plan work in small steps.\n"
          },
          coder: { id: "coder", provider: "openai_main", model: "gpt-4o-mini" }
        })
      }))

    it.effect("agents may be absent or empty", () =>
      Effect.gen(function*() {
        const none = yield* parse("providers:\n  o: { api_key: k, default_model: gpt-4o }\n")
        const empty = yield* parse("providers:\n  o: { api_key: k, default_model: gpt-4o }\nagents:\n")
        expect(none.agents).toEqual({})
        expect(empty.agents).toEqual({})
      }))

    it.effect("load reads the file through FileSystem", () =>
      Effect.gen(function*() {
        const config = yield* ProvidersConfig.load("examples/providers.yaml").pipe(
          Effect.withConfigProvider(env({ ANTHROPIC_API_KEY: "a", OPENAI_API_KEY: "b" }))
        )
        expect(Object.keys(config.providers)).toEqual(["claude_main", "openai_main"])
        expect(config.providers.claude_main!.baseUrl).toBe("https://api.anthropic.com")
        expect(config.providers.openai_main!.type).toBe("openai")
        expect(Object.keys(config.agents)).toEqual(["claude_assistant", "openai_assistant", "sturdy_planner"])
        expect(config.agents.sturdy_planner).toMatchObject({ provider: "claude_main", fallbacks: ["openai_main"] })
      }).pipe(Effect.provide(NodeFileSystem.layer)))

    it.effect("a file that does not exist", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(ProvidersConfig.load("examples/missing.yaml"))
        expect(error.path).toBe("examples/missing.yaml")
        expect(error.message).toBe(
          "Invalid provider configuration in examples/missing.yaml (1 problem):\n" +
            "  - examples/missing.yaml: cannot read the file: it does not exist"
        )
      }).pipe(Effect.provide(NodeFileSystem.layer)))

    it("the Schema decodes the snake_case file into camelCase settings", () => {
      const settings = Schema.decodeUnknownSync(ProvidersConfig.ProviderSchema)({
        api_key: "k",
        default_model: "gpt-4o",
        max_tokens: "512",
        base_url: "http://localhost:4000/v1",
        timeout: "2 minutes"
      })
      expect(settings.defaultModel).toBe("gpt-4o")
      expect(settings.maxTokens).toBe(512)
      expect(settings.baseUrl).toBe("http://localhost:4000/v1")
      expect(Duration.toMinutes(settings.timeout!)).toBe(2)
      expect(Redacted.value(settings.apiKey!)).toBe("k")
    })
  })

  describe("type inference", () => {
    it("from the default model", () => {
      const cases: ReadonlyArray<readonly [string, ProvidersConfig.ProviderType | undefined]> = [
        ["claude-sonnet-4-5", "anthropic"],
        ["claude-3-5-haiku-20241022", "anthropic"],
        ["gpt-4o", "openai"],
        ["gpt-5-mini", "openai"],
        ["chatgpt-4o-latest", "openai"],
        ["o1", "openai"],
        ["o3-mini", "openai"],
        ["o4-mini", "openai"],
        ["azure/gpt-4", "litellm"],
        ["ollama/llama3", "litellm"],
        ["groq/llama-3.3-70b-versatile", "litellm"],
        ["llama3", undefined],
        ["o5x", undefined],
        ["mistral-large", undefined]
      ]
      for (const [model, type] of cases) {
        expect([model, Option.getOrUndefined(ProvidersConfig.inferType(model))]).toEqual([model, type])
      }
    })

    it.effect("a provider without type takes the inferred one", () =>
      Effect.gen(function*() {
        const config = yield* parse(`
providers:
  a: { api_key: k, default_model: claude-haiku-4-5 }
  b: { api_key: k, default_model: o3 }
  c: { default_model: ollama/llama3 }
`)
        expect(Object.values(config.providers).map((p) => p.type)).toEqual(["anthropic", "openai", "litellm"])
      }))
  })

  describe("${VAR} substitution", () => {
    it.effect("reads variables through the ConfigProvider, with defaults, inside text and as numbers", () =>
      Effect.gen(function*() {
        const config = yield* parse(
          `
providers:
  a:
    api_key: "\${KEY_PREFIX}-\${KEY_BODY}"
    default_model: \${MODEL:-gpt-4o}
    max_tokens: \${MAX_TOKENS}
    base_url: http://\${HOST:-localhost}:\${PORT:-4000}/v1
agents:
  b:
    provider: a
    system: "Costs $5, written $\${NOT_A_VAR}; team \${TEAM:-core}"
    temperature: \${TEMPERATURE}
`,
          { KEY_PREFIX: "sk", KEY_BODY: "abc", MAX_TOKENS: "2048", HOST: "", PORT: "8080", TEMPERATURE: "0.5" }
        )
        const a = config.providers.a!
        expect(Redacted.value(a.apiKey!)).toBe("sk-abc")
        expect(a.defaultModel).toBe("gpt-4o")
        expect(a.maxTokens).toBe(2048)
        // HOST is set but empty: the default applies, as in a shell
        expect(a.baseUrl).toBe("http://localhost:8080/v1")
        expect(config.agents.b).toMatchObject({ system: "Costs $5, written ${NOT_A_VAR}; team core", temperature: 0.5 })
      }))
  })

  describe("retry, request_timeout, circuit_breaker, fallbacks", () => {
    const resilient = `
providers:
  claude_main:
    api_key: k
    default_model: claude-sonnet-4-5
    timeout: 2 minutes
    request_timeout: { total: 90 seconds, first_event: 20, idle: 5 seconds }
    retry: { max_retries: 4, base_delay: 250 millis, factor: 3, max_delay: 10, max_retry_after: 1 minute, max_elapsed: 2 minutes, jitter: false }
    circuit_breaker: { failure_threshold: 3, reset_timeout: 45 seconds, failure_rate: 0.5, minimum_calls: 20, window: 2 minutes }
    fallbacks: [openai_main, azure_gpt]
  openai_main:
    api_key: k
    default_model: gpt-4o
    retry: true
    circuit_breaker: true
    request_timeout: 30
  azure_gpt:
    default_model: azure/gpt-4
    base_url: https://myorg.openai.azure.com
    retry: \${AZURE_RETRY}
    fallbacks: [openai_main]
    same_model: true
agents:
  planner: { provider: claude_main, retry: false, request_timeout: false, circuit_breaker: false, fallbacks: [] }
  coder: { provider: openai_main, retry: { max_retries: 1 }, fallbacks: [azure_gpt], same_model: "true" }
`

    it.effect("decode into the options Resilience takes, durations as Durations", () =>
      Effect.gen(function*() {
        const config = yield* parse(resilient, { AZURE_RETRY: "false" })
        const { azure_gpt, claude_main, openai_main } = config.providers
        const millis = (d: Duration.Duration | undefined) => d === undefined ? undefined : Duration.toMillis(d)
        // The transport timeout and the per-attempt timeout are two fields
        expect(millis(claude_main!.timeout)).toBe(120_000)
        const timeouts = claude_main!.requestTimeout
        expect(
          timeouts === false || timeouts === undefined ? timeouts : {
            total: millis(timeouts.total),
            firstEvent: millis(timeouts.firstEvent),
            idle: millis(timeouts.idle)
          }
        ).toEqual({ total: 90_000, firstEvent: 20_000, idle: 5_000 })
        const retry = claude_main!.retry
        expect(
          retry === false || retry === undefined ? retry : {
            ...retry,
            baseDelay: millis(retry.baseDelay),
            maxDelay: millis(retry.maxDelay),
            maxRetryAfter: millis(retry.maxRetryAfter),
            maxElapsed: millis(retry.maxElapsed)
          }
        ).toEqual({
          maxRetries: 4,
          baseDelay: 250,
          factor: 3,
          maxDelay: 10_000,
          maxRetryAfter: 60_000,
          maxElapsed: 120_000,
          jitter: false
        })
        const breaker = claude_main!.circuitBreaker
        expect(
          breaker === false || breaker === undefined ? breaker : {
            ...breaker,
            resetTimeout: millis(breaker.resetTimeout),
            window: millis(breaker.window)
          }
        ).toEqual({ failureThreshold: 3, resetTimeout: 45_000, failureRate: 0.5, minimumCalls: 20, window: 120_000 })
        expect(claude_main!.fallbacks).toEqual(["openai_main", "azure_gpt"])
        expect(claude_main!.sameModel).toBeUndefined()

        // `true` is the defaults; a bare duration is the total
        expect(openai_main).toMatchObject({ retry: {}, circuitBreaker: {} })
        expect(openai_main!.requestTimeout).toEqual({ total: Duration.seconds(30) })
        // From a variable, as text
        expect(azure_gpt).toMatchObject({ retry: false, fallbacks: ["openai_main"], sameModel: true })

        expect(config.agents.planner).toEqual({
          id: "planner",
          provider: "claude_main",
          retry: false,
          requestTimeout: false,
          circuitBreaker: false,
          fallbacks: []
        })
        expect(config.agents.coder).toEqual({
          id: "coder",
          provider: "openai_main",
          retry: { maxRetries: 1 },
          fallbacks: ["azure_gpt"],
          sameModel: true
        })
      }))

    const on = (fields: string, agents = "") =>
      problems(`
providers:
  openai_main: { api_key: k, default_model: gpt-4o }
  claude_main:
    api_key: k
    default_model: claude-sonnet-4-5
${fields.trim().split("\n").map((line) => `    ${line}`).join("\n")}
${agents}`)

    it.effect("each bad value names its path, what it expects and what it got", () =>
      Effect.gen(function*() {
        const duration = "expected a duration such as \"30 seconds\" or a number of seconds"
        const cases: ReadonlyArray<readonly [string, string]> = [
          ["retry: { max_retries: x }", "retry.max_retries: expected a non-negative integer, got \"x\""],
          ["retry: { max_retries: -1 }", "retry.max_retries: expected a non-negative integer, got -1"],
          ["retry: { max_retries: 1.5 }", "retry.max_retries: expected a non-negative integer, got 1.5"],
          ["retry: { base_delay: soon }", `retry.base_delay: ${duration}, got "soon"`],
          ["retry: { max_elapsed: 0 }", `retry.max_elapsed: ${duration}, got 0`],
          ["retry: { factor: 0.5 }", "retry.factor: expected a number of at least 1, got 0.5"],
          ["retry: { jitter: maybe }", "retry.jitter: expected true or false, got \"maybe\""],
          [
            "retry: { max_retry: 3 }",
            "retry.max_retry: unknown field; expected one of: max_retries, base_delay, factor, max_delay, " +
            "max_retry_after, max_elapsed, jitter"
          ],
          ["retry: sometimes", "retry: expected true, false or a mapping of retry settings, got \"sometimes\""],
          ["retry: [3]", "retry: expected true, false or a mapping of retry settings, got a list"],
          [
            "request_timeout: soon",
            "request_timeout: expected a duration such as \"30 seconds\", a number of seconds, false, or a mapping " +
            "with total, first_event and idle, got \"soon\""
          ],
          ["request_timeout: { first_event: -5 }", `request_timeout.first_event: ${duration}, got -5`],
          ["request_timeout: {}", "request_timeout: set at least one of total, first_event, idle"],
          [
            "request_timeout: { first: 1 }",
            "request_timeout.first: unknown field; expected one of: total, first_event, idle"
          ],
          [
            "circuit_breaker: { failure_threshold: 0 }",
            "circuit_breaker.failure_threshold: expected a positive integer, got 0"
          ],
          [
            "circuit_breaker: { failure_rate: 1.5 }",
            "circuit_breaker.failure_rate: expected a number greater than 0 and at most 1, got 1.5"
          ],
          [
            "circuit_breaker: { minimum_calls: none }",
            "circuit_breaker.minimum_calls: expected a positive integer, got \"none\""
          ],
          ["circuit_breaker: { reset_timeout: later }", `circuit_breaker.reset_timeout: ${duration}, got "later"`],
          [
            "circuit_breaker: on",
            "circuit_breaker: expected true, false or a mapping of circuit breaker settings, got \"on\""
          ],
          ["fallbacks: openai_main", "fallbacks: expected a list of provider ids, got \"openai_main\""],
          ["fallbacks: [openai_main, 7]", "fallbacks[1]: expected a provider id, got 7"],
          [
            "fallbacks: [opnai_main]",
            "fallbacks[0]: fallback provider \"opnai_main\" is not defined; defined providers: openai_main, claude_main"
          ],
          [
            "fallbacks: [claude_main]",
            "fallbacks[0]: provider claude_main lists itself; a fallback must be another provider"
          ],
          ["fallbacks: [openai_main, openai_main]", "fallbacks[1]: \"openai_main\" is listed twice"],
          ["same_model: yes", "same_model: expected true or false, got \"yes\""],
          ["same_model: true", "same_model: has no effect without fallbacks"],
          ["fallbacks: []\nsame_model: true", "same_model: has no effect without fallbacks"]
        ]
        for (const [fields, problem] of cases) {
          // Each problem names the line of its field: claude_main's fields start on line 7
          const line = 7 + fields.split("\n").findIndex((l) => l.startsWith(problem.split(/[.[:]/)[0]!))
          const got = (yield* on(fields)).map((p) => p.replace(/^(test\/providers\.yaml:\d+):\d+: /, "$1: "))
          expect([fields, got]).toEqual([fields, [`test/providers.yaml:${line}: providers.claude_main.${problem}`]])
        }
      }))

    it.effect("agents take the same fields, checked the same way", () =>
      Effect.gen(function*() {
        expect(
          yield* on(
            "fallbacks: [openai_main]",
            `agents:
  planner:
    provider: claude_main
    retry: { max_retries: x }
    fallbacks: [claude_main, gpt]
  coder: { provider: openai_main, same_model: true }
  writer: { provider: claude_main, same_model: true }
  reader: { provider: claude_main, fallbacks: [], same_model: true }
  critic: { provider: claude_main, request_timeout: {}, circuit_breaker: false, oops: 1 }
`
          )
        ).toEqual([
          "test/providers.yaml:11:14: agents.planner.retry.max_retries: expected a non-negative integer, got \"x\"",
          "test/providers.yaml:12:17: agents.planner.fallbacks[0]: \"claude_main\" is the agent's own provider; a fallback must be another provider",
          "test/providers.yaml:12:30: agents.planner.fallbacks[1]: fallback provider \"gpt\" is not defined; defined providers: openai_main, claude_main",
          "test/providers.yaml:13:35: agents.coder.same_model: has no effect without fallbacks (the agent's own, or its provider openai_main's)",
          // writer inherits claude_main's fallbacks: its same_model applies to them
          "test/providers.yaml:15:51: agents.reader.same_model: has no effect without fallbacks (the agent's own, or its provider claude_main's)",
          "test/providers.yaml:16:36: agents.critic.request_timeout: set at least one of total, first_event, idle",
          "test/providers.yaml:16:81: agents.critic.oops: unknown field; expected one of: provider, model, max_tokens, temperature, system, retry, " +
          "request_timeout, circuit_breaker, fallbacks, same_model, budget"
        ])
      }))

    it.effect("fallbacks that lead back to a provider form a cycle, reported once per cycle", () =>
      Effect.gen(function*() {
        expect(
          yield* problems(`
providers:
  a: { api_key: k, default_model: gpt-4o, fallbacks: [b] }
  b: { api_key: k, default_model: gpt-4o, fallbacks: [c] }
  c: { api_key: k, default_model: gpt-4o, fallbacks: [a, b] }
  d: { api_key: k, default_model: gpt-4o, fallbacks: [e] }
  e: { api_key: k, default_model: gpt-4o, fallbacks: [d] }
  f: { api_key: k, default_model: gpt-4o, fallbacks: [a, d] }
`)
        ).toEqual([
          "test/providers.yaml:3:43: providers.a.fallbacks: the fallbacks form a cycle: a -> b -> c -> a",
          "test/providers.yaml:4:43: providers.b.fallbacks: the fallbacks form a cycle: b -> c -> b",
          "test/providers.yaml:6:43: providers.d.fallbacks: the fallbacks form a cycle: d -> e -> d"
        ])
      }))

    it.effect("every problem is reported together with the rest of the file's", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(parse(
          `
providers:
  claude_main:
    api_key: k
    default_model: claude-sonnet-4-5
    max_tokens: lots
    retry: { max_retries: x, jitter: maybe }
    request_timeout: soon
    fallbacks: [openai_main, opnai_main]
  openai_main:
    api_key: k
    default_model: gpt-4o
    circuit_breaker: { failure_threshold: 0 }
    fallbacks: [claude_main]
agents:
  planner: { provider: claude_main, fallbacks: [claude_main], temperature: 3 }
`,
          {},
          "examples/bad.yaml"
        ))
        expect(error.message).toBe(
          `Invalid provider configuration in examples/bad.yaml (9 problems):
  - examples/bad.yaml:6:5: providers.claude_main.max_tokens: expected a positive integer, got "lots"
  - examples/bad.yaml:7:14: providers.claude_main.retry.max_retries: expected a non-negative integer, got "x"
  - examples/bad.yaml:7:30: providers.claude_main.retry.jitter: expected true or false, got "maybe"
  - examples/bad.yaml:8:5: providers.claude_main.request_timeout: expected a duration such as "30 seconds", a number of seconds, false, or a mapping with total, first_event and idle, got "soon"
  - examples/bad.yaml:9:5: providers.claude_main.fallbacks: the fallbacks form a cycle: claude_main -> openai_main -> claude_main
  - examples/bad.yaml:9:30: providers.claude_main.fallbacks[1]: fallback provider "opnai_main" is not defined; defined providers: claude_main, openai_main
  - examples/bad.yaml:13:24: providers.openai_main.circuit_breaker.failure_threshold: expected a positive integer, got 0
  - examples/bad.yaml:16:49: agents.planner.fallbacks[0]: "claude_main" is the agent's own provider; a fallback must be another provider
  - examples/bad.yaml:16:63: agents.planner.temperature: expected a number between 0 and 2, got 3`
        )
      }))
  })

  describe("errors a person can act on", () => {
    it.effect("the error is a ProvidersConfigError (not effect's ConfigError); the old name still works", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(parse("providers: {}\n"))
        expect(error).toBeInstanceOf(ProvidersConfig.ProvidersConfigError)
        expect(error._tag).toBe("ProvidersConfigError")

        expect(error).toBeInstanceOf(ProvidersConfig.ConfigError)
        const caught = yield* parse("providers: {}\n").pipe(
          Effect.catchTag("ProvidersConfigError", (e) => Effect.succeed(e.problems))
        )
        expect(caught).toEqual(["test/providers.yaml:1:1: providers: define at least one provider"])
      }))

    it.effect("a YAML syntax error names the file, the line and the column", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(parse(
          "providers:\n  claude_main:\n    type: anthropic\n   default_model: claude-sonnet-4-5\n",
          {},
          "examples/x.yaml"
        ))
        expect(error.path).toBe("examples/x.yaml")
        expect(error.problems).toEqual([
          "examples/x.yaml:4:1: All mapping items must start at the same column"
        ])
      }))

    it.effect("each problem names file:line:col of its YAML node: a Schema problem, a cross-field one, a missing field", () =>
      Effect.gen(function*() {
        const text = [
          "providers:", //                                  1
          "  claude_main:", //                              2
          "    api_key: k", //                              3
          "    default_model: claude-sonnet-4-5", //        4
          "    retry:", //                                  5
          "      max_retries: many", //                     6  Schema
          "    fallbacks:", //                              7
          "      - openai_main", //                         8
          "      - nowhere", //                             9  cross-field
          "  openai_main:", //                              10 no api_key: the provider's line
          "    default_model: gpt-4o", //                   11
          "    organization: org-1", //                     12
          "agents:", //                                     13
          "  planner: { provider: openai_main, model: claude-opus-4-1, temperature: hot }", // 14 Schema
          ""
        ].join("\n")
        expect(yield* problems(text, {}, "config/providers.yaml")).toEqual([
          "config/providers.yaml:6:7: providers.claude_main.retry.max_retries: expected a non-negative integer, got \"many\"",
          "config/providers.yaml:9:9: providers.claude_main.fallbacks[1]: fallback provider \"nowhere\" is not defined; " +
          "defined providers: claude_main, openai_main",
          "config/providers.yaml:10:3: providers.openai_main.api_key: is required for an openai provider " +
          "(for example api_key: ${OPENAI_API_KEY})",
          "config/providers.yaml:14:61: agents.planner.temperature: expected a number between 0 and 2, got \"hot\""
        ])
        // A document decoded from code has no lines: the problems name their paths only
        const fromCode = yield* Effect.flip(ProvidersConfig.decode({ providers: { a: { default_model: "gpt-4o" } } }))
        expect(fromCode.problems).toEqual([
          "providers.a.api_key: is required for an openai provider (for example api_key: ${OPENAI_API_KEY})"
        ])
      }))

    it.effect("checkProvider's problems are reported in the same round as the file's, each at its line", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          ProvidersConfig.parse(
            "providers:\n  a: { api_key: k, default_model: gpt-4o, max_tokens: 0 }\n  b:\n    type: litellm\n    default_model: x/y\n",
            "p.yaml",
            {
              checkProvider: (provider) =>
                provider.type === "litellm"
                  ? [{ field: "default_model", message: `no route for ${provider.defaultModel}` }]
                  : []
            }
          )
        )
        expect(error.problems).toEqual([
          "p.yaml:2:43: providers.a.max_tokens: expected a positive integer, got 0",
          "p.yaml:5:5: providers.b.default_model: no route for x/y"
        ])
      }))

    it.effect("a bad field names its path, what it expects and what it got", () =>
      Effect.gen(function*() {
        expect(
          yield* problems(`
providers:
  claude_main:
    type: anthropic
    api_key: k
    default_model: claude-sonnet-4-5
    max_tokens: lots
`)
        ).toEqual([
          "test/providers.yaml:7:5: providers.claude_main.max_tokens: expected a positive integer, got \"lots\""
        ])
      }))

    it.effect("a missing variable names the variable and the provider that needs it", () =>
      Effect.gen(function*() {
        expect(
          yield* problems(`
providers:
  claude_main:
    type: anthropic
    api_key: \${ANTHROPIC_API_KEY}
    default_model: claude-sonnet-4-5
`)
        ).toEqual([
          "test/providers.yaml:5:5: providers.claude_main.api_key: environment variable ANTHROPIC_API_KEY is not set"
        ])
      }))

    it.effect("an agent whose provider is not defined names both", () =>
      Effect.gen(function*() {
        expect(
          yield* problems(`
providers:
  claude_main: { api_key: k, default_model: claude-sonnet-4-5 }
  openai_main: { api_key: k, default_model: gpt-4o }
agents:
  planner: { provider: claude_mian }
`)
        ).toEqual([
          "test/providers.yaml:6:14: agents.planner.provider: agent planner names provider \"claude_mian\", which is not defined; " +
          "defined providers: claude_main, openai_main"
        ])
      }))

    it.effect("every problem of a file is reported together, in the order of the file", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(parse(
          `
providers:
  claude_main:
    type: antropic
    api_key: \${ANTHROPIC_API_KEY}
    max_tokens: lots
    timeout: soon
    base_url: api.anthropic.com
    max_token: 5
  openai_main:
    default_model: gpt-4o
    organization: \${OPENAI_ORG}
    api_version: "2024-10-21"
  local:
    default_model: llama3
  priced:
    api_key: k
    default_model: claude-sonnet-4-5
    pricing:
      claude-sonnet-4-5: { input: -1, output: cheap, cache_reed: 0.3 }
agents:
  planner: { provider: claude_mian, temperature: 3 }
  coder: { model: gpt-4o }
  writer: { provider: openai_main, max_tokens: 0 }
  analyst: { provider: priced, model: gpt-4o }
top_level: 1
`,
          {},
          "examples/bad.yaml"
        ))
        expect(error.message).toBe(
          `Invalid provider configuration in examples/bad.yaml (19 problems):
  - examples/bad.yaml:4:5: providers.claude_main.type: expected one of anthropic, openai, litellm, got "antropic"
  - examples/bad.yaml:5:5: providers.claude_main.api_key: environment variable ANTHROPIC_API_KEY is not set
  - examples/bad.yaml:6:5: providers.claude_main.max_tokens: expected a positive integer, got "lots"
  - examples/bad.yaml:7:5: providers.claude_main.timeout: expected a duration such as "30 seconds" or a number of seconds, got "soon"
  - examples/bad.yaml:8:5: providers.claude_main.base_url: expected an http(s) URL, got "api.anthropic.com"
  - examples/bad.yaml:9:5: providers.claude_main.max_token: unknown field; expected one of: type, api_key, default_model, max_tokens, clamp_max_tokens, base_url, timeout, pricing, organization, project, api_version, headers, retry, request_timeout, circuit_breaker, fallbacks, same_model, budget
  - examples/bad.yaml:12:5: providers.openai_main.organization: environment variable OPENAI_ORG is not set
  - examples/bad.yaml:13:5: providers.openai_main.api_version: is not taken by an openai provider (litellm only)
  - examples/bad.yaml:10:3: providers.openai_main.api_key: is required for an openai provider (for example api_key: \${OPENAI_API_KEY})
  - examples/bad.yaml:14:3: providers.local.type: cannot infer the provider type from default_model "llama3"; write type: anthropic, openai or litellm
  - examples/bad.yaml:20:28: providers.priced.pricing.claude-sonnet-4-5.input: expected a non-negative number (USD per million tokens), got -1
  - examples/bad.yaml:20:39: providers.priced.pricing.claude-sonnet-4-5.output: expected a non-negative number (USD per million tokens), got "cheap"
  - examples/bad.yaml:20:54: providers.priced.pricing.claude-sonnet-4-5.cache_reed: unknown field; expected one of: input, output, cache_read, cache_write, cache_write_1h, long_context
  - examples/bad.yaml:22:14: agents.planner.provider: agent planner names provider "claude_mian", which is not defined; defined providers: claude_main, openai_main, local, priced
  - examples/bad.yaml:22:37: agents.planner.temperature: expected a number between 0 and 2, got 3
  - examples/bad.yaml:23:3: agents.coder.provider: is required
  - examples/bad.yaml:24:36: agents.writer.max_tokens: expected a positive integer, got 0
  - examples/bad.yaml:25:32: agents.analyst.model: "gpt-4o" is not a Claude model, and provider priced is an anthropic provider
  - examples/bad.yaml:26:1: top_level: unknown field; expected one of: providers, agents, budgets`
        )
      }))

    it.effect("the shape of the file", () =>
      Effect.gen(function*() {
        expect(yield* problems("")).toEqual([
          "the configuration is empty; expected a mapping with providers (and optionally agents)"
        ])
        expect(yield* problems("- a\n- b\n")).toEqual([
          "test/providers.yaml:1:1: expected a mapping with providers (and optionally agents), got a list"
        ])
        expect(yield* problems("agents: {}\n")).toEqual(["test/providers.yaml:1:1: providers: is required"])
        expect(yield* problems("providers: {}\n")).toEqual([
          "test/providers.yaml:1:1: providers: define at least one provider"
        ])
        expect(yield* problems("providers:\n  a: 5\n  b:\nagents:\n  x: hi\n")).toEqual([
          "test/providers.yaml:2:3: providers.a: expected a mapping of provider settings, got 5",
          "test/providers.yaml:3:3: providers.b: expected a mapping of provider settings, got an empty value",
          "test/providers.yaml:5:3: agents.x: expected a mapping of agent settings, got \"hi\""
        ])
        expect(
          yield* problems(
            "providers:\n  a: { api_key: \"${A\", type: openai }\n  b: { api_key: \"${1X}\", type: openai }\n"
          )
        ).toEqual([
          "test/providers.yaml:2:8: providers.a.api_key: \"${\" without a closing \"}\"",
          "test/providers.yaml:3:8: providers.b.api_key: is not a valid variable reference; write ${NAME} or ${NAME:-default}"
        ])
        expect(yield* problems("providers:\n  a: { type: litellm, organization: o }\n")).toEqual([
          // A field that is absent comes after those present
          "test/providers.yaml:2:23: providers.a.organization: is not taken by a litellm provider (openai only)",
          "test/providers.yaml:2:3: providers.a.default_model: is required for a litellm provider (for example azure/gpt-4o, ollama/llama3, groq/llama-3.3-70b)"
        ])
      }))

    it.effect("a bad file read through FileSystem names the file in every syntax problem", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(ProvidersConfig.load("config/providers.yaml"))
        expect(error.message).toBe(
          "Invalid provider configuration in config/providers.yaml (1 problem):\n" +
            "  - config/providers.yaml:3:3: Map keys must be unique"
        )
      }).pipe(
        Effect.provide(FileSystem.layerNoop({
          readFileString: () => Effect.succeed("providers:\n  a: { api_key: k, default_model: gpt-4o }\n  a: {}\n")
        }))
      ))
  })

  describe("secrets", () => {
    it.effect("a recognisable key never shows in any error or inspect output", () =>
      Effect.gen(function*() {
        const contains = (u: unknown) =>
          [inspect(u, { depth: null }), String(u), JSON.stringify(u) ?? ""].some((text) => text.includes("SECRET"))
        // Read from a variable, and written in the file, with problems on the same lines
        const config = yield* parse(
          `
providers:
  a:
    api_key: \${ANTHROPIC_API_KEY}
    default_model: claude-sonnet-4-5
    headers: { authorization: "Bearer ${SECRET}" }
  b:
    api_key: ${OPENAI_SECRET}
    default_model: gpt-4o
`,
          { ANTHROPIC_API_KEY: SECRET }
        )
        expect(contains(config)).toBe(false)
        expect(Redacted.value(config.providers.b!.apiKey!)).toBe(OPENAI_SECRET)

        const errors = [
          yield* Effect.flip(parse(
            `
providers:
  a:
    api_key: "\${ANTHROPIC_API_KEY}\${${SECRET}}"
    default_model: claude-sonnet-4-5
    bogus: 1
  b:
    api_key: ${OPENAI_SECRET}
    headers: ${SECRET}
    default_model: claude-x
    max_tokens: ${OPENAI_SECRET}
    api_version: "${OPENAI_SECRET}"
agents:
  c: { provider: ${SECRET} }
`,
            { ANTHROPIC_API_KEY: SECRET }
          )),
          // A syntax error on the key's line: no code frame is repeated
          yield* Effect.flip(parse(`providers:\n  a:\n    api_key: "${SECRET}\n    default_model: gpt-4o\n`)),
          yield* Effect.flip(parse(`providers:\n  a: { api_key: ${SECRET}, default_model: gpt-4o, max_tokens: x }\n`))
        ]
        for (const error of errors) {
          expect(error.problems.length).toBeGreaterThan(0)
          expect(contains(error)).toBe(false)
          expect(error.message.includes("SECRET")).toBe(false)
        }
        expect(errors[2]!.problems).toEqual([
          "test/providers.yaml:2:72: providers.a.max_tokens: expected a positive integer, got \"x\""
        ])
      }))
  })
})
