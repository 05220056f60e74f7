/**
 * The universal provider: any OpenAI-compatible backend over Effect's `HttpClient` (no vendor
 * SDK). A model string with a LiteLLM-style prefix routes to the right endpoint and auth, with
 * LiteLLM's names: `azure/<deployment>`, `ollama/`, `hosted_vllm/` (alias `vllm/`),
 * `together_ai/`, `groq/`, `openrouter/`, `deepseek/`, `mistral/`, `fireworks_ai/`, `xai/`,
 * `openai/`, `litellm_proxy/` (a LiteLLM proxy, whose `x-litellm-response-cost` is the cost), and
 * a bare model name with a `baseUrl` for any other compatible server.
 *
 * The prefix table ({@link routes}) is data: each route knows its default base URL, its auth
 * header and the variable its API key is read from (through Effect's `ConfigProvider`).
 *
 * @example
 * import { FetchHttpClient } from "@effect/platform"
 * import { Effect, Layer } from "effect"
 * import { LiteLLM, LLM, Message } from "@orchestify/providers"
 *
 * // GROQ_API_KEY is read through the ConfigProvider
 * const Groq = LiteLLM.layer({ defaultModel: "groq/llama-3.3-70b-versatile" }).pipe(
 *   Layer.provide(FetchHttpClient.layer)
 * )
 *
 * const program = LLM.complete({ messages: [Message.user("Hello")] }).pipe(Effect.provide(Groq))
 *
 * @since 0.1.0
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Capabilities from "../Capabilities.js"
import * as Errors from "../internal/errors.js"
import { InFlight } from "../internal/inflight.js"
import * as Chat from "../internal/openaiChat.js"
import * as Provider from "../internal/provider.js"
import * as Sse from "../internal/sse.js"
import * as Watchdog from "../internal/watchdog.js"
import * as LLM from "../LLM.js"
import * as LLMError from "../LLMError.js"
import type * as Pricing from "../Pricing.js"
import type * as Response from "../Response.js"

/**
 * How one backend is reached.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Route {
  /** What the backend is, for error messages and docs. */
  readonly description: string
  /** The default base URL (the `.../v1` URL; for Azure the resource URL). */
  readonly baseUrl?: string | undefined
  /** The variable that supplies or overrides the base URL. */
  readonly baseUrlEnv?: string | undefined
  /** The variable the API key is read from. */
  readonly apiKeyEnv?: string | undefined
  /** `bearer`: `Authorization: Bearer <key>` (sent when a key is known); `api-key`: Azure's header. */
  readonly auth: "bearer" | "api-key"
  /** Azure OpenAI: `/openai/deployments/<deployment>/chat/completions?api-version=...`. */
  readonly azure?: boolean | undefined
  /** The backend reports each call's cost in `x-litellm-response-cost` (a LiteLLM proxy). */
  readonly reportsCost?: boolean | undefined
  readonly dialect: Chat.Dialect
}

const compatible: Chat.Dialect = { maxTokensField: "max_tokens", streamUsage: true }

/**
 * The prefix table, with LiteLLM's names. Extend it with the `routes` option.
 *
 * @since 0.1.0
 * @category Models
 */
export const routes: Readonly<Record<string, Route>> = {
  azure: {
    description: "Azure OpenAI (model = deployment name)",
    baseUrlEnv: "AZURE_API_BASE",
    apiKeyEnv: "AZURE_API_KEY",
    auth: "api-key",
    azure: true,
    dialect: Chat.openaiDialect
  },
  openai: {
    description: "OpenAI, or any OpenAI-compatible server at base_url",
    baseUrl: "https://api.openai.com/v1",
    baseUrlEnv: "OPENAI_API_BASE",
    apiKeyEnv: "OPENAI_API_KEY",
    auth: "bearer",
    dialect: Chat.openaiDialect
  },
  ollama: {
    description: "Ollama (OpenAI-compatible /v1)",
    baseUrl: "http://localhost:11434/v1",
    baseUrlEnv: "OLLAMA_API_BASE",
    apiKeyEnv: "OLLAMA_API_KEY",
    auth: "bearer",
    dialect: compatible
  },
  hosted_vllm: {
    description: "a vLLM server (base_url required)",
    baseUrlEnv: "HOSTED_VLLM_API_BASE",
    apiKeyEnv: "HOSTED_VLLM_API_KEY",
    auth: "bearer",
    dialect: compatible
  },
  together_ai: {
    description: "Together AI",
    baseUrl: "https://api.together.xyz/v1",
    apiKeyEnv: "TOGETHERAI_API_KEY",
    auth: "bearer",
    dialect: compatible
  },
  groq: {
    description: "Groq",
    baseUrl: "https://api.groq.com/openai/v1",
    apiKeyEnv: "GROQ_API_KEY",
    auth: "bearer",
    dialect: compatible
  },
  openrouter: {
    description: "OpenRouter",
    baseUrl: "https://openrouter.ai/api/v1",
    apiKeyEnv: "OPENROUTER_API_KEY",
    auth: "bearer",
    dialect: compatible
  },
  deepseek: {
    description: "DeepSeek",
    baseUrl: "https://api.deepseek.com/v1",
    apiKeyEnv: "DEEPSEEK_API_KEY",
    auth: "bearer",
    dialect: compatible
  },
  mistral: {
    description: "Mistral AI (usage comes without stream_options)",
    baseUrl: "https://api.mistral.ai/v1",
    apiKeyEnv: "MISTRAL_API_KEY",
    auth: "bearer",
    dialect: { maxTokensField: "max_tokens", streamUsage: false }
  },
  fireworks_ai: {
    description: "Fireworks AI",
    baseUrl: "https://api.fireworks.ai/inference/v1",
    apiKeyEnv: "FIREWORKS_AI_API_KEY",
    auth: "bearer",
    dialect: compatible
  },
  xai: {
    description: "xAI",
    baseUrl: "https://api.x.ai/v1",
    apiKeyEnv: "XAI_API_KEY",
    auth: "bearer",
    dialect: compatible
  },
  litellm_proxy: {
    description: "a LiteLLM proxy (base_url required; reports cost)",
    baseUrlEnv: "LITELLM_PROXY_API_BASE",
    apiKeyEnv: "LITELLM_PROXY_API_KEY",
    auth: "bearer",
    reportsCost: true,
    dialect: compatible
  }
}

const aliases: Readonly<Record<string, string>> = { vllm: "hosted_vllm" }

/** A bare model name with a `baseUrl`: any OpenAI-compatible server. */
const bareRoute: Route = {
  description: "an OpenAI-compatible server at base_url",
  auth: "bearer",
  dialect: compatible
}

/**
 * Options of the LiteLLM provider.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Overrides the key read from the route's variable (e.g. `GROQ_API_KEY`). */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /** A model with a prefix (`"groq/llama-3.3-70b-versatile"`), or a bare name with `baseUrl`. */
  readonly defaultModel: string
  /** Default `max_tokens` when a request sets none. Default 4096. */
  readonly maxTokens?: number | undefined
  /** Overrides the route's base URL (for Azure: `https://<resource>.openai.azure.com`). */
  readonly baseUrl?: string | undefined
  /** Azure `api-version`. Default: `AZURE_API_VERSION`, else `"2024-10-21"`. */
  readonly apiVersion?: string | undefined
  /** Wait for the reply's headers, and at most this long between two reads of its body. Default 10 minutes. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The registry id. Default `"litellm"`. */
  readonly providerId?: string | undefined
  /** Price overrides, looked up before the built-in table. */
  readonly pricing?: Pricing.PriceTable | undefined
  /** Extra headers sent with every request. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** More prefixes, or replacements for built-in ones. */
  readonly routes?: Readonly<Record<string, Route>> | undefined
}

/**
 * A model resolved to its backend.
 *
 * @since 0.1.0
 * @category Routing
 */
export interface Resolved {
  readonly prefix: string | undefined
  readonly route: Route
  /** The model name sent on the wire (prefix stripped). */
  readonly model: string
}

/**
 * Resolves a model string to its route; `undefined` when the prefix is unknown and there is no
 * base URL to send a bare model to.
 *
 * @since 0.1.0
 * @category Routing
 */
export const resolve = (
  model: string,
  table: Readonly<Record<string, Route>> = routes,
  hasBaseUrl = false
): Resolved | undefined => {
  const slash = model.indexOf("/")
  if (slash > 0) {
    const given = model.slice(0, slash)
    const prefix = aliases[given] ?? given
    const route = table[prefix]
    if (route !== undefined) return { prefix, route, model: model.slice(slash + 1) }
  }
  return hasBaseUrl ? { prefix: undefined, route: bareRoute, model } : undefined
}

const knownPrefixes = (table: Readonly<Record<string, Route>>) =>
  [...Object.keys(table), ...Object.keys(aliases)].sort().map((p) => `${p}/`).join(", ")

const trimSlash = (url: string) => url.endsWith("/") ? url.slice(0, -1) : url

const optionalConfig = <A>(config: Config.Config<A>): Effect.Effect<Option.Option<A>> =>
  Config.option(config).pipe(Effect.orElseSucceed(() => Option.none<A>()))

/**
 * Builds the LiteLLM `LLM` service. Needs an `HttpClient` (`FetchHttpClient.layer`, or
 * `NodeHttpClient` from `@effect/platform-node`).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<LLM.Service, never, Scope.Scope | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const providerId = options.providerId ?? "litellm"
    const table: Readonly<Record<string, Route>> = { ...routes, ...options.routes }
    const timeout = Duration.decode(options.timeout ?? Duration.minutes(10))
    const http = yield* HttpClient.HttpClient

    // Keys and base URLs are read once, through the ConfigProvider; keys stay Redacted.
    const keys = new Map<string, Redacted.Redacted<string>>()
    const bases = new Map<string, string>()
    for (const route of Object.values(table)) {
      if (route.apiKeyEnv !== undefined && !keys.has(route.apiKeyEnv)) {
        const key = yield* optionalConfig(Config.redacted(route.apiKeyEnv))
        if (Option.isSome(key)) keys.set(route.apiKeyEnv, key.value)
      }
      if (route.baseUrlEnv !== undefined && !bases.has(route.baseUrlEnv)) {
        const base = yield* optionalConfig(Config.string(route.baseUrlEnv))
        if (Option.isSome(base)) bases.set(route.baseUrlEnv, base.value)
      }
    }
    const apiVersion = options.apiVersion ??
      Option.getOrElse(yield* optionalConfig(Config.string("AZURE_API_VERSION")), () => "2024-10-21")
    const secrets = [...keys.values(), ...(options.apiKey !== undefined ? [options.apiKey] : [])]
    const ctx: Errors.ErrorContext = { provider: providerId, secrets, timeout }

    interface Target {
      readonly resolved: Resolved
      readonly url: string
      readonly headers: Record<string, string>
      /** The key goes in an `api-key` header, which Effect does not redact from spans by default. */
      readonly apiKeyHeader: boolean
    }

    // A model's target is worked out once (a few models per provider; the cache is bounded anyway).
    const targets = new Map<string, Target>()
    const target = (model: string): Target | LLMError.LLMError => {
      const cached = targets.get(model)
      if (cached !== undefined) return cached
      const made = makeTarget(model)
      if (!LLMError.isLLMError(made) && targets.size < 1024) targets.set(model, made)
      return made
    }

    const makeTarget = (model: string): Target | LLMError.LLMError => {
      const resolved = resolve(model, table, options.baseUrl !== undefined)
      if (resolved === undefined) {
        return new LLMError.InvalidRequestError({
          provider: providerId,
          message: `${providerId}: ${
            model.includes("/")
              ? `unknown provider prefix in model "${model}"`
              : `model "${model}" has no provider prefix`
          }; known prefixes: ${
            knownPrefixes(table)
          }; or set base_url to reach any OpenAI-compatible server with a bare model name`
        })
      }
      const { route } = resolved
      const base = options.baseUrl ??
        (route.baseUrlEnv !== undefined ? bases.get(route.baseUrlEnv) : undefined) ?? route.baseUrl
      if (base === undefined) {
        return new LLMError.InvalidRequestError({
          provider: providerId,
          message: `${providerId}: model "${model}" needs a base URL (${route.description}): set base_url${
            route.baseUrlEnv !== undefined ? ` or ${route.baseUrlEnv}` : ""
          }`
        })
      }
      const key = options.apiKey ?? (route.apiKeyEnv !== undefined ? keys.get(route.apiKeyEnv) : undefined)
      const headers: Record<string, string> = { ...options.headers }
      if (key !== undefined) {
        if (route.auth === "api-key") headers["api-key"] = Redacted.value(key)
        else headers.authorization = `Bearer ${Redacted.value(key)}`
      } else if (route.auth === "api-key") {
        return new LLMError.AuthenticationError({
          provider: providerId,
          message: `${providerId}: model "${model}" needs an API key: set api_key${
            route.apiKeyEnv !== undefined ? ` or ${route.apiKeyEnv}` : ""
          }`
        })
      }
      const url = route.azure === true
        ? `${trimSlash(base)}/openai/deployments/${encodeURIComponent(resolved.model)}/chat/completions?api-version=${
          encodeURIComponent(apiVersion)
        }`
        : `${trimSlash(base)}/chat/completions`
      return { resolved, url, headers, apiKeyHeader: headers["api-key"] !== undefined }
    }

    const fromHttpError = (error: HttpClientError.HttpClientError): LLMError.LLMError => {
      const cause = (error as { cause?: unknown }).cause
      if (error._tag === "ResponseError" && error.reason === "Decode" && cause instanceof SyntaxError) {
        return Errors.malformed(ctx, `reply is not valid JSON: ${cause.message}`)
      }
      return Errors.fromThrown(ctx, cause ?? error)
    }

    // The `api-key` header is not in Effect's default list of headers redacted from spans.
    const withRedactedKey = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.locallyWith(effect, Headers.currentRedactedNames, (names) => [...names, "api-key"])

    // Every request is sent in a scope of ours (`HttpClient.withScope`): closing it aborts the
    // request and closes its socket. That is how the watchdog ends a call past its timeout, and
    // how an interrupted call or an abandoned stream lets go of its connection. The client's own
    // span is made only when someone observes spans (as ours).
    const watchdog = yield* Watchdog.make(timeout)
    const traced = HttpClient.withScope(http)
    const untraced = HttpClient.withTracerDisabledWhen(traced, () => true)
    const abort = (scope: Scope.CloseableScope) => {
      Effect.runFork(Scope.close(scope, Exit.void))
    }

    const send = (
      fiber: Fiber.RuntimeFiber<unknown, unknown>,
      t: Target,
      body: Record<string, unknown>,
      scope: Scope.CloseableScope
    ) => {
      const client = Provider.observed(fiber) ? traced : untraced
      // The call path has checked what can fail to serialise; a body that still cannot be sent
      // (a `toJSON` that throws) is the caller's mistake, never a defect.
      let json: string
      try {
        json = JSON.stringify(body)
      } catch (error) {
        return Effect.fail(
          new LLMError.InvalidRequestError({
            provider: providerId,
            message: `${providerId}: the request cannot be sent as JSON: ${
              error instanceof Error ? error.message : String(error)
            }`
          })
        )
      }
      const sent = client.execute(
        HttpClientRequest.post(t.url).pipe(
          HttpClientRequest.setHeaders(t.headers),
          HttpClientRequest.bodyText(json, "application/json")
        )
      )
      return (t.apiKeyHeader ? withRedactedKey(sent) : sent).pipe(
        Scope.extend(scope),
        Effect.mapError(fromHttpError),
        Effect.flatMap((response) =>
          response.status < 400 ? Effect.succeed(response) : Effect.flatMap(
            response.text.pipe(Effect.orElseSucceed(() => "")),
            (text) =>
              Effect.fail(Errors.fromHttp(ctx, { status: response.status, headers: response.headers, body: text }))
          )
        )
      )
    }

    const requestIdOf = (response: HttpClientResponse.HttpClientResponse) =>
      response.headers["x-request-id"] ?? response.headers["request-id"] ?? response.headers["x-litellm-call-id"]

    const costOf = (t: Target, response: HttpClientResponse.HttpClientResponse): number | undefined => {
      if (t.resolved.route.reportsCost !== true) return undefined
      const header = response.headers["x-litellm-response-cost"]
      const cost = header === undefined ? Number.NaN : Number(header)
      return Number.isFinite(cost) && cost >= 0 ? cost : undefined
    }

    const wire = (request: Provider.ResolvedRequest, t: Target): Provider.ResolvedRequest => ({
      ...request,
      model: t.resolved.model
    })

    /** A request in flight on the provider's watchdog, sent in a scope of its own (closing it aborts the request). */
    const inFlight = (scope: Scope.CloseableScope) => new InFlight(watchdog, () => abort(scope))

    const complete = (
      request: Provider.ResolvedRequest
    ): Effect.Effect<ReadonlyArray<Response.StreamEvent>, LLMError.LLMError> =>
      Effect.withFiberRuntime((fiber) => {
        const t = target(request.model)
        if (LLMError.isLLMError(t)) return Effect.fail(t)
        return Effect.flatMap(Scope.make(), (scope) => {
          // The deadline covers the whole call, the body included.
          const flight = inFlight(scope)
          return send(fiber, t, Chat.toBody(wire(request, t), t.resolved.route.dialect), scope).pipe(
            Effect.flatMap((response) =>
              response.json.pipe(
                Effect.mapError(fromHttpError),
                Effect.flatMap((data) => {
                  flight.finished = true
                  return Effect.try({
                    try: () =>
                      Provider.toEvents(
                        providerId,
                        Chat.fromCompletion(ctx, data, requestIdOf(response), costOf(t, response))
                      ),
                    catch: (error) => Errors.fromThrown(ctx, error)
                  })
                })
              )
            ),
            Effect.mapError((error) => flight.timedOut ? Errors.timedOut(ctx) : error),
            Effect.onExit(() => Effect.sync(() => flight.release()))
          )
        })
      })

    type Events = Stream.Stream<Response.StreamEvent, LLMError.LLMError>
    const stream = (request: Provider.ResolvedRequest, report: Provider.ReportUsage): Events =>
      Stream.unwrapScoped(Effect.withFiberRuntime<Events, LLMError.LLMError, Scope.Scope>((fiber) => {
        const t = target(request.model)
        if (LLMError.isLLMError(t)) return Effect.fail(t)
        return Effect.flatMap(Scope.make(), (scope) => {
          // The wait for the headers, then each read of the body, are timed by the call's deadline.
          const flight = inFlight(scope)
          const guard = (read: Sse.Read): Sse.Read => Sse.timedRead(watchdog, flight.deadline, read, ctx)
          return Effect.zipRight(
            // A body read to its end needs no abort.
            Effect.addFinalizer(() => Effect.sync(() => flight.release())),
            send(fiber, t, Chat.toStreamBody(wire(request, t), t.resolved.route.dialect), scope).pipe(
              Effect.mapError((error) => flight.timedOut ? Errors.timedOut(ctx) : error),
              Effect.map((response) => {
                flight.answered()
                const handler = Chat.makeHandler(ctx, providerId, requestIdOf(response), report, costOf(t, response))
                return Sse.decodeStream(
                  response.stream,
                  fromHttpError,
                  {
                    onEvent: handler.onEvent,
                    onEnd: (out) => {
                      handler.onEnd(out)
                      flight.finished = true
                    }
                  },
                  ctx,
                  guard
                )
              })
            )
          )
        })
      }))

    return yield* LLM.make({
      providerId,
      providerType: "litellm",
      defaultModel: options.defaultModel,
      defaultMaxTokens: options.maxTokens ?? 4096,
      capabilities: Capabilities.forModel,
      pricing: options.pricing,
      validate: (request) => {
        const t = target(request.model)
        return LLMError.isLLMError(t) ? t : undefined
      },
      send: complete,
      sendStream: stream
    })
  })

/**
 * The LiteLLM provider as a layer of `LLM`; needs an `HttpClient`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<LLM.LLM, never, HttpClient.HttpClient> =>
  Layer.scoped(LLM.LLM, make(options))

/**
 * The LiteLLM provider with its options read from `Config`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options>
): Layer.Layer<LLM.LLM, ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.scoped(LLM.LLM, Effect.flatMap(Config.unwrap(config), make))
