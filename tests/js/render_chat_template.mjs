// Reference chat-template renderer for the tests: @huggingface/jinja (the renderer of
// transformers.js), called the way transformers.js' apply_chat_template calls it.
// stdin: a JSON array of jobs {template, context}; stdout: a JSON array of {ok, text} / {ok, error}
// in the same order. One process renders every job, so the test starts node once.
import { Template } from "@huggingface/jinja";
import { readFileSync } from "node:fs";

const jobs = JSON.parse(readFileSync(0, "utf8"));
const results = jobs.map(({ template, context }) => {
  try {
    return { ok: true, text: new Template(template).render(context) };
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(results));
