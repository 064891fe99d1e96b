// Four demonstrations for a query, with a token budget, and the ready prompt.
import { select } from "./select.js";

const selection = await select("http://127.0.0.1:8000", "tweets", {
  query: "the brakes failed on the highway",
  k: 4,
  kernel: "softmax",
  constraints: { token_budget: 400 },
});
for (const example of selection.examples) {
  console.log(example.selection_rank, example.label ?? "-", example.input);
}
console.log(selection.prompt);
