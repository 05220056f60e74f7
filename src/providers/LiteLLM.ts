/**
 * The universal provider: any OpenAI-compatible backend over Effect's `HttpClient` (no vendor
 * SDK). A model string with a LiteLLM-style prefix routes to the right endpoint and auth, with
 * LiteLLM's names: `azure/<deployment>`, `ollama/`, `hosted_vllm/` (alias `vllm/`),
 * `together_ai/`, `groq/`, `openrouter/`, `deepseek/`, `mistral/`, `fireworks_ai/`, `xai/`,
 * `openai/`, `litellm_proxy/` (a LiteLLM proxy, whose reported cost, `x-litellm-response-cost` or a
 * stream's `usage.cost`, is the cost), and
 * a bare model name with a `baseUrl` for any other compatible server.
 *
 * The prefix table ({@link routes}) is data: each route knows its default base URL, its auth
 * header and the variable its API key is read from. `layerConfig` reads those variables (through
 * Effect's `ConfigProvider`) and hands them to `make`, which reads nothing itself. A key is sent
 * only to its own route: the `apiKey` option to the default model's route, the others' from
 * `keys` (their variables); a route with no key is refused before any request.
 *
 * @example
 * ```ts
 * import { FetchHttpClient } from "@effect/platform"
 * import { Config, Effect, Layer } from "effect"
 * import { LiteLLM, LLM, Message } from "@orchestify/providers"
 *
 * // GROQ_API_KEY (and every other route's variable) is read through the ConfigProvider
 * const Groq = LiteLLM.layerConfig({ defaultModel: Config.succeed("groq/llama-3.3-70b-versatile") }).pipe(
 *   Layer.provide(FetchHttpClient.layer)
 * )
 *
 * const program = LLM.complete({ messages: [Message.user("Hello")] }).pipe(Effect.provide(Groq))
 * ```
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
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
import * as Headers from "../internal/headers.js"
import { InFlight } from "../internal/inflight.js"
import * as Chat from "../internal/openaiChat.js"
import * as Provider from "../internal/provider.js"
import * as Sse from "../internal/sse.js"
import * as Watchdog from "../internal/watchdog.js"
import * as LLM from "../LLM.js"
import * as LLMError from "../LLMError.js"
import type * as Pricing from "../Pricing.js"
import type * as Response from "../Response.js"
import * as Telemetry from "../Telemetry.js"

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
  /**
   * The backend works without a key (a local Ollama or vLLM): reached without `Authorization` when
   * no key is known. Any other route that has an `apiKeyEnv` and no key is refused before any
   * request, unless it is the default model's route.
   */
  readonly keyOptional?: boolean | undefined
  /** Azure OpenAI: `/openai/deployments/<deployment>/chat/completions?api-version=...`. */
  readonly azure?: boolean | undefined
  /**
   * The backend reports each call's cost (a LiteLLM proxy): `x-litellm-response-cost` on a JSON
   * reply, `usage.cost` in a stream's last chunk (and in a JSON body's `usage`, which wins).
   */
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
    keyOptional: true,
    dialect: compatible
  },
  hosted_vllm: {
    description: "a vLLM server (base_url required)",
    baseUrlEnv: "HOSTED_VLLM_API_BASE",
    apiKeyEnv: "HOSTED_VLLM_API_KEY",
    auth: "bearer",
    keyOptional: true,
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
  keyOptional: true,
  dialect: compatible
}

/**
 * Options of the LiteLLM provider. `make` and `layer` read nothing from the environment: what they
 * are not given, they do not have. `layerConfig` (or {@link readEnv}) fills `keys`, `bases` and
 * `apiVersion` from the routes' variables.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /**
   * The key of the default model's backend: sent only to the default model's route (and to
   * `baseUrl`, bare models included), never to another prefix's vendor. Wins over `keys`.
   */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /** A model with a prefix (`"groq/llama-3.3-70b-versatile"`), or a bare name with `baseUrl`. */
  readonly defaultModel: string
  /** Default `max_tokens` when a request sets none. Default 4096. */
  readonly maxTokens?: number | undefined
  /**
   * The base URL of the default model's route (for Azure: `https://<resource>.openai.azure.com`),
   * which also receives bare model names. Other routes keep their own (`bases`, or the default).
   */
  readonly baseUrl?: string | undefined
  /** Azure `api-version`. Default `"2024-10-21"` (`layerConfig`: `AZURE_API_VERSION` first). */
  readonly apiVersion?: string | undefined
  /** Wait for the reply's headers, and at most this long between two reads of its body. Default 10 minutes. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The registry id. Default `"litellm"`. */
  readonly providerId?: string | undefined
  /** Price overrides, looked up before the built-in table. */
  readonly pricing?: Pricing.PriceTable | undefined
  /**
   * Extra headers sent with every request (`x-litellm-api-key`, `Ocp-Apim-Subscription-Key`, ...);
   * a value may be `Redacted`. Every name is redacted from the `HttpClient`'s spans and every value
   * scrubbed from errors and logs.
   */
  readonly headers?: Headers.Values | undefined
  /**
   * When a request's prompt plus its `maxTokens` would not fit the model's context window (counted
   * locally: the tokenizer for OpenAI models, else an estimate), lower `maxTokens` to what fits
   * instead of refusing it with `ContextLengthError`. Default `false`.
   */
  readonly clampMaxTokens?: boolean | undefined
  /** More prefixes, or replacements for built-in ones. */
  readonly routes?: Readonly<Record<string, Route>> | undefined
  /**
   * API keys by route prefix (`{ groq: Redacted.make("gsk_..."), openrouter: ... }`): each is sent
   * only to its route. A route with a key variable and no key is refused before any request
   * (unless it is the default model's route, or `keyOptional`).
   */
  readonly keys?: Readonly<Record<string, Redacted.Redacted<string>>> | undefined
  /** Base URLs by route prefix, in place of the route's default (`{ hosted_vllm: "http://gpu:8000/v1" }`). */
  readonly bases?: Readonly<Record<string, string>> | undefined
}

/**
 * The options a LiteLLM provider runs with, defaults applied (see {@link Options}).
 *
 * @since 0.1.0
 * @category Models
 */
export interface ResolvedOptions {
  readonly providerId: string
  readonly defaultModel: string
  readonly maxTokens: number
  readonly apiKey: Redacted.Redacted<string> | undefined
  readonly baseUrl: string | undefined
  readonly apiVersion: string
  readonly timeout: Duration.Duration
  readonly pricing: Pricing.PriceTable | undefined
  readonly headers: Headers.Values
  /** The whole prefix table: the built-in routes and the `routes` option. */
  readonly routes: Readonly<Record<string, Route>>
  /** Keys by route prefix (aliases resolved). */
  readonly keys: Readonly<Record<string, Redacted.Redacted<string>>>
  /** Base URLs by route prefix (aliases resolved). */
  readonly bases: Readonly<Record<string, string>>
}

/**
 * The LiteLLM provider: the `LLM` service it offers, the `HttpClient` it sends with, and the
 * options it runs with.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service extends LLM.Service {
  readonly client: HttpClient.HttpClient
  readonly options: ResolvedOptions
}

/**
 * The LiteLLM provider's own tag. `layer` and `layerConfig` provide it and `LLM.LLM`, both the same
 * service.
 *
 * @since 0.1.0
 * @category Tags
 */
export class LiteLLM extends Context.Tag("@orchestify/providers/LiteLLM")<LiteLLM, Service>() {}

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

const byPrefix = <A>(record: Readonly<Record<string, A>> | undefined): Record<string, A> =>
  Object.fromEntries(Object.entries(record ?? {}).map(([prefix, value]) => [aliases[prefix] ?? prefix, value]))

/**
 * Fills options with what the routes' variables hold, read through Effect's `ConfigProvider`:
 * each route's key (`GROQ_API_KEY`, ... as a `Redacted`) into `keys`, its base URL
 * (`AZURE_API_BASE`, ...) into `bases`, and `AZURE_API_VERSION` into `apiVersion`. What the options
 * already set wins. `layerConfig` uses it; so does the registry.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const readEnv = (options: Options): Effect.Effect<Options> =>
  Effect.gen(function*() {
    const table: Readonly<Record<string, Route>> = { ...routes, ...options.routes }
    const keys: Record<string, Redacted.Redacted<string>> = {}
    const bases: Record<string, string> = {}
    for (const [prefix, route] of Object.entries(table)) {
      if (route.apiKeyEnv !== undefined) {
        const key = yield* optionalConfig(Config.redacted(route.apiKeyEnv))
        if (Option.isSome(key)) keys[prefix] = key.value
      }
      if (route.baseUrlEnv !== undefined) {
        const base = yield* optionalConfig(Config.string(route.baseUrlEnv))
        if (Option.isSome(base)) bases[prefix] = base.value
      }
    }
    const apiVersion = options.apiVersion ??
      Option.getOrUndefined(yield* optionalConfig(Config.string("AZURE_API_VERSION")))
    return {
      ...options,
      keys: { ...keys, ...byPrefix(options.keys) },
      bases: { ...bases, ...byPrefix(options.bases) },
      ...(apiVersion !== undefined ? { apiVersion } : {})
    }
  })

const resolveOptions = (options: Options): ResolvedOptions => ({
  providerId: options.providerId ?? "litellm",
  defaultModel: options.defaultModel,
  maxTokens: options.maxTokens ?? 4096,
  apiKey: options.apiKey,
  baseUrl: options.baseUrl,
  apiVersion: options.apiVersion ?? "2024-10-21",
  timeout: Duration.decode(options.timeout ?? Duration.minutes(10)),
  pricing: options.pricing,
  headers: { ...options.headers },
  routes: { ...routes, ...options.routes },
  keys: byPrefix(options.keys),
  bases: byPrefix(options.bases)
})

/**
 * Builds the LiteLLM provider from its options alone (it reads no environment: see
 * {@link readEnv} and {@link layerConfig}). Needs an `HttpClient` (`FetchHttpClient.layer`, or
 * `NodeHttpClient` from `@effect/platform-node`).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<Service, never, Scope.Scope | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const resolvedOptions = resolveOptions(options)
    const { apiVersion, bases, keys, providerId, routes: table, timeout } = resolvedOptions
    const http = yield* HttpClient.HttpClient

    const secrets = [
      ...Object.values(keys),
      ...(options.apiKey !== undefined ? [options.apiKey] : []),
      ...Headers.secrets(options.headers)
    ]
    const ctx: Errors.ErrorContext = { provider: providerId, secrets, timeout, clock: yield* Effect.clock }

    interface Target {
      readonly resolved: Resolved
      readonly url: string
      readonly headers: Record<string, string>
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

    const home = resolve(options.defaultModel, table, options.baseUrl !== undefined)
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
      // The explicit `apiKey` and `baseUrl` describe one backend: the default model's route (and a
      // bare model sent to `baseUrl`). Every other route has its own base and key, so a key is never
      // sent to another vendor.
      const atHome = resolved.prefix === undefined || (home !== undefined && resolved.prefix === home.prefix)
      const ownBase = resolved.prefix !== undefined ? bases[resolved.prefix] : undefined
      const base = atHome ? options.baseUrl ?? ownBase ?? route.baseUrl : ownBase ?? route.baseUrl
      if (base === undefined) {
        const where = [...(atHome ? ["base_url"] : []), ...(route.baseUrlEnv !== undefined ? [route.baseUrlEnv] : [])]
        return new LLMError.InvalidRequestError({
          provider: providerId,
          message: `${providerId}: model "${model}" needs a base URL (${route.description}): ${
            where.length > 0 ? `set ${where.join(" or ")}` : "give its route a baseUrl"
          }`
        })
      }
      const ownKey = resolved.prefix !== undefined ? keys[resolved.prefix] : undefined
      const key = atHome ? options.apiKey ?? ownKey : ownKey
      const headers: Record<string, string> = { ...Headers.plain(options.headers) }
      if (key !== undefined) {
        if (route.auth === "api-key") headers["api-key"] = Redacted.value(key)
        else headers.authorization = `Bearer ${Redacted.value(key)}`
      } else if (atHome && route.auth === "api-key") {
        return new LLMError.AuthenticationError({
          provider: providerId,
          message: `${providerId}: model "${model}" needs an API key: set api_key${
            route.apiKeyEnv !== undefined ? ` or ${route.apiKeyEnv}` : ""
          }`
        })
      } else if (!atHome && route.apiKeyEnv !== undefined && route.keyOptional !== true) {
        return new LLMError.InvalidRequestError({
          provider: providerId,
          message:
            `${providerId}: model "${model}" routes to ${route.description} (${resolved.prefix}/), which has no API key: set ${route.apiKeyEnv} (the api_key option is sent only to the default model's route, ${
              home?.prefix !== undefined ? `${home.prefix}/` : "base_url"
            })`
        })
      }
      const url = route.azure === true
        ? `${trimSlash(base)}/openai/deployments/${encodeURIComponent(resolved.model)}/chat/completions?api-version=${
          encodeURIComponent(apiVersion)
        }`
        : `${trimSlash(base)}/chat/completions`
      return { resolved, url, headers }
    }

    const fromHttpError = (error: HttpClientError.HttpClientError): LLMError.LLMError => {
      const cause = (error as { cause?: unknown }).cause
      if (error._tag === "ResponseError" && error.reason === "Decode" && cause instanceof SyntaxError) {
        return Errors.malformed(ctx, `reply is not valid JSON: ${cause.message}`)
      }
      return Errors.fromThrown(ctx, cause ?? error)
    }

    // Effect redacts only a few header names from the HttpClient's span (`authorization`, ...):
    // Azure's `api-key` and every configured header are added to them.
    const withRedactedHeaders = Telemetry.withRedactedHeaders(["api-key", ...Headers.names(options.headers)])

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
      return withRedactedHeaders(sent).pipe(
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

    // A LiteLLM proxy reports the cost in `x-litellm-response-cost` on a JSON reply, and in the last
    // chunk's `usage.cost` on a stream (its headers leave before the cost is known): both are read.
    const reportsCost = (t: Target): boolean => t.resolved.route.reportsCost === true

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
                      Provider.withRateLimitsOnFinish(
                        Provider.toEvents(
                          providerId,
                          Chat.fromCompletion(ctx, data, requestIdOf(response), costOf(t, response), reportsCost(t))
                        ),
                        Errors.rateLimitHeaders(response.headers)
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
                const handler = Chat.makeHandler(
                  ctx,
                  providerId,
                  requestIdOf(response),
                  report,
                  costOf(t, response),
                  reportsCost(t)
                )
                const rateLimits = Errors.rateLimitHeaders(response.headers)
                return Sse.decodeStream(
                  response.stream,
                  fromHttpError,
                  {
                    onEvent: rateLimits === undefined ? handler.onEvent : (event, data, out) => {
                      const before = out.length
                      handler.onEvent(event, data, out)
                      // The Finish carries the reply's rate-limit headers.
                      for (let i = before; i < out.length; i++) out[i] = Provider.withRateLimits(out[i]!, rateLimits)
                    },
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

    const llm = yield* LLM.make({
      providerId,
      providerType: "litellm",
      defaultModel: options.defaultModel,
      defaultMaxTokens: resolvedOptions.maxTokens,
      capabilities: Capabilities.forModel,
      pricing: options.pricing,
      validate: (request) => {
        const t = target(request.model)
        return LLMError.isLLMError(t) ? t : undefined
      },
      send: complete,
      sendStream: stream,
      clampMaxTokens: options.clampMaxTokens
    })
    return { ...llm, client: http, options: resolvedOptions } satisfies Service
  })

const layerOf = <E, R>(
  made: Effect.Effect<Service, E, R>
): Layer.Layer<LiteLLM | LLM.LLM, E, Exclude<R, Scope.Scope>> =>
  Layer.scopedContext(Effect.map(made, (service) => Context.make(LiteLLM, service).pipe(Context.add(LLM.LLM, service))))

/**
 * The LiteLLM provider as a layer of `LiteLLM` and `LLM` (one service), from its options alone
 * (no environment is read); needs an `HttpClient`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<LiteLLM | LLM.LLM, never, HttpClient.HttpClient> =>
  layerOf(make(options))

/**
 * The LiteLLM provider with its options read from `Config`, and the routes' keys, base URLs and
 * Azure api-version from their variables ({@link readEnv}); provides `LiteLLM` and `LLM`.
 *
 * @example
 * ```ts
 * import { FetchHttpClient } from "@effect/platform"
 * import { Config, Layer } from "effect"
 * import { LiteLLM } from "@orchestify/providers"
 *
 * // GROQ_API_KEY (and every other route's key) is read through the ConfigProvider
 * const Groq = LiteLLM.layerConfig({ defaultModel: Config.succeed("groq/llama-3.3-70b-versatile") }).pipe(
 *   Layer.provide(FetchHttpClient.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options>
): Layer.Layer<LiteLLM | LLM.LLM, ConfigError.ConfigError, HttpClient.HttpClient> =>
  layerOf(Config.unwrap(config).pipe(Effect.flatMap(readEnv), Effect.flatMap(make)))
