/**
 * Tools the model may call: definitions built from an Effect `Schema` (JSON Schema out), and the
 * calls the model makes.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Tool } from "@orchestify/providers"
 *
 * const getWeather = Tool.make({
 *   name: "get_weather",
 *   description: "Current weather for a city",
 *   parameters: Schema.Struct({ city: Schema.String })
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as JSONSchema from "effect/JSONSchema"
import type * as Schema from "effect/Schema"

/**
 * A JSON Schema document, as sent to the provider.
 *
 * @since 0.1.0
 * @category Models
 */
export type JsonSchema = Readonly<Record<string, unknown>>

/**
 * A tool the model may call.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ToolDefinition {
  readonly name: string
  readonly description?: string
  /** JSON Schema of the tool's input (an object schema). */
  readonly parameters: JsonSchema
}

/**
 * A call the model made: `input` is the parsed JSON of its arguments.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ToolCall {
  readonly id: string
  readonly name: string
  readonly input: unknown
}

/**
 * Which tools the model may or must call.
 *
 * @since 0.1.0
 * @category Models
 */
export type ToolChoice = "auto" | "none" | "required" | { readonly name: string }

/**
 * Builds a tool definition from an Effect `Schema` of its input.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = <A, I>(options: {
  readonly name: string
  readonly description?: string
  readonly parameters: Schema.Schema<A, I, never>
}): ToolDefinition => {
  const { $schema: _ignored, ...parameters } = JSONSchema.make(options.parameters) as unknown as Record<string, unknown>
  return options.description === undefined
    ? { name: options.name, parameters }
    : { name: options.name, description: options.description, parameters }
}

/**
 * Builds a tool definition from a JSON Schema written by hand.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const fromJsonSchema = (options: ToolDefinition): ToolDefinition => options
