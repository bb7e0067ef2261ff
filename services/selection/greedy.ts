/**
 * Greedy forward selection: starting from no item, repeatedly add the item whose addition gives the
 * lowest `loss`, and stop when no addition lowers it. `loss` sees each subset in the order of
 * `items`; the result lists the chosen items in the order they were added.
 */
export function greedyForwardSelection<T>(items: readonly T[], loss: (subset: readonly T[]) => number): T[] {
  const chosen = new Set<T>();
  const added: T[] = [];
  let best = Infinity;
  for (;;) {
    let bestItem: T | undefined;
    for (const item of items) {
      if (chosen.has(item)) continue;
      const value = loss(items.filter((x) => chosen.has(x) || x === item));
      if (value < best) {
        best = value;
        bestItem = item;
      }
    }
    if (bestItem === undefined) return added;
    chosen.add(bestItem);
    added.push(bestItem);
  }
}
