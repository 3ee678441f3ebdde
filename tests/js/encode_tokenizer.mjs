// Reference tokenizer for the tests: @lenml/tokenizers (transformers.js' tokenizers) built from a
// tokenizer.json and tokenizer_config.json, as transformers.js' AutoTokenizer builds it.
// usage: node encode_tokenizer.mjs TOKENIZER_JSON TOKENIZER_CONFIG_JSON < texts.json
// stdin: a JSON array of strings; stdout: a JSON array of {ids, decoded} in the same order — the
// ids without special tokens added (added-token texts inside a string are recognised, as
// transformers does), and their decoding with special tokens kept and no space clean-up.
import { TokenizerLoader } from "@lenml/tokenizers";
import { readFileSync } from "node:fs";

const [tokenizerPath, configPath] = process.argv.slice(2);
if (!tokenizerPath || !configPath) {
  process.stderr.write("usage: node encode_tokenizer.mjs TOKENIZER_JSON TOKENIZER_CONFIG_JSON < texts.json\n");
  process.exit(2);
}
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(readFileSync(tokenizerPath, "utf8")),
  tokenizerConfig: JSON.parse(readFileSync(configPath, "utf8")),
});
const texts = JSON.parse(readFileSync(0, "utf8"));
const results = texts.map((text) => {
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  const decoded =
    ids.length === 0 ? "" : tokenizer.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  return { ids, decoded };
});
process.stdout.write(JSON.stringify(results));
