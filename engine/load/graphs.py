"""Graph algorithms on a flow, linear or near-linear in its size.

`IndexedGraph` holds the flow as integer adjacency lists and answers reachability
(DFS postorder), dominators (queried in O(1) through dominator-tree intervals) and strongly
connected components; `RunsBefore` answers the rarer "can X run before Y at all" questions
with short searches over the condensation, or one bit-set pass, with one bit per node that
is asked about.
"""

from __future__ import annotations

import networkx as nx


class IndexedGraph:
    """The flow graph as integer adjacency lists, for the linear-time algorithms below
    (networkx's own are general but slow on views and, for dominators, on long flows)."""

    def __init__(self, graph: nx.DiGraph, nodes: list[str] | None = None):
        self.names = list(graph.nodes) if nodes is None else nodes
        index = self.index = {name: i for i, name in enumerate(self.names)}
        self.succ: list[list[int]] = [[] for _ in self.names]
        self.pred: list[list[int]] = [[] for _ in self.names]
        for u, v in graph.edges:
            iu, iv = index.get(u), index.get(v)
            if iu is not None and iv is not None:
                self.succ[iu].append(iv)
                self.pred[iv].append(iu)

    def postorder(self, root: int) -> list[int]:
        """Nodes reachable from root, in DFS postorder (iterative)."""
        succ = self.succ
        seen = [False] * len(succ)
        seen[root] = True
        order: list[int] = []
        stack = [(root, iter(succ[root]))]
        while stack:
            node, it = stack[-1]
            for nxt in it:
                if not seen[nxt]:
                    seen[nxt] = True
                    stack.append((nxt, iter(succ[nxt])))
                    break
            else:
                stack.pop()
                order.append(node)
        return order

    def dominator_intervals(self, root: int) -> tuple[list[int], list[int]]:
        """Immediate dominators (Cooper, Harvey and Kennedy's iterative algorithm, on reverse
        postorder), then enter/leave times on the dominator tree: a dominates b iff
        enter[a] <= enter[b] and leave[b] <= leave[a]. Unreachable nodes get -1."""
        n = len(self.succ)
        order = self.postorder(root)
        post = [-1] * n
        for i, node in enumerate(order):
            post[node] = i
        idom = [-1] * n
        idom[root] = root
        rpo = order[::-1][1:]
        pred = self.pred
        changed = True
        while changed:
            changed = False
            for b in rpo:
                new = -1
                for p in pred[b]:
                    if idom[p] == -1:
                        continue
                    if new == -1:
                        new = p
                        continue
                    f1, f2 = p, new
                    while f1 != f2:
                        while post[f1] < post[f2]:
                            f1 = idom[f1]
                        while post[f2] < post[f1]:
                            f2 = idom[f2]
                    new = f1
                if idom[b] != new:
                    idom[b] = new
                    changed = True
        children: list[list[int]] = [[] for _ in range(n)]
        for node in rpo:
            children[idom[node]].append(node)
        enter, leave = [-1] * n, [-1] * n
        clock = 0
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                leave[node] = clock
            else:
                enter[node] = clock
                stack.append((node, True))
                stack.extend((c, False) for c in children[node])
            clock += 1
        return enter, leave

    def components(self, members: list[bool] | None = None) -> tuple[list[int], list[list[int]]]:
        """Strongly connected components (iterative Tarjan) of the nodes in `members` (all by
        default): (component of each node or -1, components in reverse topological order)."""
        n = len(self.succ)
        succ = self.succ
        inside = members if members is not None else [True] * n
        index = [-1] * n
        low = [0] * n
        on_stack = [False] * n
        comp = [-1] * n
        stack: list[int] = []
        comps: list[list[int]] = []
        counter = 0
        for start in range(n):
            if not inside[start] or index[start] != -1:
                continue
            work = [(start, 0)]
            while work:
                node, i = work.pop()
                if i == 0:
                    index[node] = low[node] = counter
                    counter += 1
                    stack.append(node)
                    on_stack[node] = True
                recurse = False
                nexts = succ[node]
                while i < len(nexts):
                    nxt = nexts[i]
                    i += 1
                    if not inside[nxt]:
                        continue
                    if index[nxt] == -1:
                        work.append((node, i))
                        work.append((nxt, 0))
                        recurse = True
                        break
                    if on_stack[nxt] and index[nxt] < low[node]:
                        low[node] = index[nxt]
                if recurse:
                    continue
                if low[node] == index[node]:
                    members_: list[int] = []
                    while True:
                        w = stack.pop()
                        on_stack[w] = False
                        comp[w] = len(comps)
                        members_.append(w)
                        if w == node:
                            break
                    comps.append(members_)
                if work:
                    parent = work[-1][0]
                    if low[node] < low[parent]:
                        low[parent] = low[node]
        return comp, comps


class RunsBefore:
    """Can node a run before node b on some path (a path a -> ... -> b of at least one edge)?

    On the condensation (strongly connected components in topological order): inside one
    component, yes iff the component has a cycle; a component later in topological order
    cannot reach an earlier one; otherwise a search from a's component that never enters
    components later than b's. Flows are mostly chains of short branches, so these searches
    are short; if they ever add up to more than a few passes over the graph, the remaining
    questions are answered by one bit-set pass carrying a bit per node asked about."""

    def __init__(self, g: IndexedGraph, questions: list[tuple[int, int]], budget: int | None = None):
        comp, comps = g.components()
        ncomp = len(comps)
        topo = [ncomp - 1 - c for c in range(ncomp)]  # Tarjan emits reverse topological order
        csucc: list[set[int]] = [set() for _ in range(ncomp)]
        cyclic = [len(members) > 1 for members in comps]
        for u, nexts in enumerate(g.succ):
            cu = comp[u]
            for v in nexts:
                cv = comp[v]
                if cu != cv:
                    csucc[cu].add(cv)
                elif u == v:
                    cyclic[cu] = True
        self.answers: dict[tuple[int, int], bool] = {}
        if budget is None:
            budget = 8 * (len(g.succ) + sum(map(len, g.succ))) + 1000
        stamp = [-1] * ncomp
        left: list[tuple[int, int]] = []
        for qi, (a, b) in enumerate(questions):
            ca, cb = comp[a], comp[b]
            key = (ca, cb)
            if key in self.answers:
                continue
            if ca == cb:
                self.answers[key] = cyclic[ca]
                continue
            limit = topo[cb]
            if topo[ca] > limit:
                self.answers[key] = False
                continue
            if budget <= 0:
                left.append(key)
                continue
            found = False
            todo = [ca]
            stamp[ca] = qi
            while todo and not found:
                c = todo.pop()
                budget -= 1
                for d in csucc[c]:
                    if d == cb:
                        found = True
                        break
                    if stamp[d] != qi and topo[d] < limit:
                        stamp[d] = qi
                        todo.append(d)
            self.answers[key] = found
        if left:
            self._bitsets(comps, csucc, topo, left)
        self.comp = comp

    def _bitsets(self, comps, csucc, topo, keys) -> None:
        bit = {ca: 1 << i for i, ca in enumerate(sorted({ca for ca, _ in keys}))}
        before = [0] * len(comps)
        for c in sorted(range(len(comps)), key=topo.__getitem__):
            out = before[c] | bit.get(c, 0)
            for d in csucc[c]:
                before[d] |= out
        for ca, cb in keys:
            self.answers[(ca, cb)] = bool(before[cb] & bit[ca])

    def __call__(self, a: int, b: int) -> bool:
        return self.answers[(self.comp[a], self.comp[b])]
