/**
 * Where a place of a YAML document was written: the `file:line:col` of the node at a path, from
 * the `yaml` package's node ranges and a `LineCounter`. A path that leaves the written nodes (a
 * missing key, a value reached through an alias or a merge) is placed at the deepest node it
 * reached, so a missing field points at the mapping that lacks it.
 */
import * as YAML from "yaml"
import type { Path } from "./problem.js"
import type { Locate } from "./render.js"

const keyOf = (node: unknown): unknown => YAML.isScalar(node) ? node.value : node

/** The offset where the node at `path` starts (a mapping entry: its key), or the deepest one reached. */
const offsetOf = (root: unknown, path: Path): number | undefined => {
  let node: unknown = root
  let offset: number | undefined = YAML.isNode(root) ? root.range?.[0] : undefined
  for (const key of path) {
    if (YAML.isMap(node)) {
      const pair = node.items.find((item) => String(keyOf(item.key)) === String(key))
      if (pair === undefined) break
      offset = (YAML.isNode(pair.key) ? pair.key.range?.[0] : undefined) ?? offset
      node = pair.value
    } else if (YAML.isSeq(node) && typeof key === "number") {
      const item = node.items[key]
      if (item === undefined) break
      offset = (YAML.isNode(item) ? item.range?.[0] : undefined) ?? offset
      node = item
    } else {
      break
    }
  }
  return offset
}

/** A {@link Locate} for a parsed document of `source`, its lines counted by `lines`. */
export const locator = (document: YAML.Document, lines: YAML.LineCounter, source: string): Locate => (path) => {
  const offset = offsetOf(document.contents, path)
  if (offset === undefined) return undefined
  const { col, line } = lines.linePos(offset)
  return `${source}:${line}:${col}`
}
