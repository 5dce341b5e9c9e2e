// Constrained JSON decoding. The grammar is checked against an independent JSON parser
// (nlohmann) on thousands of random byte strings, on hand-picked schema cases, and end to end:
// a sampler drawing at temperature 1 from random logits over a small byte-ish vocabulary, under
// the constraint, always ends with a document that parses and satisfies the schema.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "infer/deferred_constraint.h"
#include "infer/json_constraint.h"
#include "infer/sampler.h"

using namespace tern;
using namespace tern::infer;
using Json = nlohmann::ordered_json;

namespace {

std::shared_ptr<const JsonSchema> schema(const char* text) {
  return std::make_shared<JsonSchema>(JsonSchema::compile(Json::parse(text)));
}

std::shared_ptr<const JsonSchema> any_value() {
  return schema("{}");
}

// The whole text is a complete document under the grammar.
bool accepts(std::shared_ptr<const JsonSchema> s, std::string_view text) {
  JsonGrammar g(std::move(s));
  return g.advance(text) && g.complete();
}

// Whether nlohmann reads the text as exactly one JSON value (it allows surrounding whitespace;
// so does the grammar, up to its run limit, which the generator below never exceeds).
bool nlohmann_accepts(const std::string& text) {
  return Json::accept(text);
}

}  // namespace

TEST(JsonGrammar, AgreesWithAnIndependentParserOnRandomText) {
  // Short strings over JSON's own alphabet hit every corner: leading zeros, bare dots,
  // unterminated strings, escapes, trailing commas, nesting.
  const std::string alphabet =
      "{}[]\":,-+.0123456789eEtrufalsn \\/u\x01\xc3\xa9\xe0\xa0\xed\x9f\xf4\x8f\x90";
  std::mt19937 rng(7);
  int accepted = 0;
  for (int i = 0; i < 40000; ++i) {
    std::string text;
    const int len = 1 + int(rng() % 10);
    for (int k = 0; k < len; ++k) text.push_back(alphabet[rng() % alphabet.size()]);
    const bool want = nlohmann_accepts(text);
    ASSERT_EQ(accepts(any_value(), text), want) << "'" << text << "'";
    accepted += want;
  }
  EXPECT_GT(accepted, 500) << "the generator should reach valid documents often";
}

TEST(JsonGrammar, AcceptsAndRefusesHandPickedDocuments) {
  const auto any = any_value();
  for (const char* ok : {"{}", "[]", "0", "-0.5e+10", "\"a\\u00e9\\n\"", "true", "null",
                         "{\"a\": [1, {\"b\": null}], \"c\": \"\xc3\xa9\"}", " [ 1 , 2 ] "})
    EXPECT_TRUE(accepts(any, ok)) << ok;
  for (const char* bad : {"{", "01", "1.", "1e999", ".5", "+1", "[1,]", "{\"a\"}", "{\"a\":1,}",
                          "\"\x01\"", "\"\xc3\"", "\"\xff\"", "tru", "nul", "\"\\x\"", "{} {}"})
    EXPECT_FALSE(accepts(any, bad)) << bad;
  std::string blank(JsonGrammar::kMaxWhitespace + 1, ' ');
  EXPECT_FALSE(accepts(any, "[" + blank + "1]")) << "whitespace runs are bounded";
}

TEST(JsonGrammar, EnforcesTheSchema) {
  const auto person = schema(R"({
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 3},
                   "age": {"type": "integer"},
                   "tags": {"type": "array", "items": {"enum": ["a", "b", 1]}, "maxItems": 2},
                   "pet": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/pet"}]}},
    "required": ["name", "age"],
    "additionalProperties": false,
    "$defs": {"pet": {"type": "object", "properties": {"kind": {"const": "cat"}},
                      "required": ["kind"], "additionalProperties": false}}})");
  for (const char* ok :
       {R"({"name":"Bo","age":3})", R"({"age":3,"name":"\u00e9"})",
        R"({"name":"Bob","age":-1,"tags":["a",1]})", R"({"name":"","age":0,"pet":{"kind":"cat"}})",
        R"({"name":"x","age":0,"pet":null})"})
    EXPECT_TRUE(accepts(person, ok)) << ok;
  for (const char* bad :
       {R"({"name":"Bo"})", R"({"name":"Boby","age":3})", R"({"name":"Bo","age":3.5})",
        R"({"name":"Bo","age":3,"x":1})", R"({"name":"Bo","name":"Al","age":3})",
        R"({"name":"Bo","age":3,"tags":["c"]})", R"({"name":"Bo","age":3,"tags":["a","b",1]})",
        R"({"name":"Bo","age":3,"pet":{"kind":"dog"}})", R"([])"})
    EXPECT_FALSE(accepts(person, bad)) << bad;

  // Long enums are one frame, not a fork per value (which would drop values past 64).
  std::string values, last;
  for (int i = 0; i < 150; ++i) values += (i ? ",\"v" : "\"v") + std::to_string(i) + "\"";
  const auto many = schema(("{\"enum\":[" + values + "]}").c_str());
  EXPECT_TRUE(accepts(many, "\"v149\""));
  EXPECT_TRUE(accepts(many, "\"v7\""));
  EXPECT_FALSE(accepts(many, "\"v150\""));
  const auto prefixes = schema(R"({"type":"array","items":{"enum":[1,12,true]}})");
  EXPECT_TRUE(accepts(prefixes, "[1,12,1,true]")) << "a value that is a prefix of another";
  EXPECT_FALSE(accepts(prefixes, "[121]"));

  const auto tree = schema(R"({"type":"object","properties":{"kids":{"type":"array",
    "items":{"$ref":"#"},"minItems":1}},"additionalProperties":false})");
  EXPECT_TRUE(accepts(tree, R"({"kids":[{},{"kids":[{}]}]})")) << "recursion through $ref";
  EXPECT_FALSE(accepts(tree, R"({"kids":[]})"));
}

TEST(JsonGrammar, SchemaKeywordsItCannotGuaranteeAreRefusedByName) {
  for (const char* kw : {"pattern", "minimum", "allOf", "not", "uniqueItems", "prefixItems"}) {
    const std::string text = std::string(R"({"type":"string",")") + kw + "\":1}";
    try {
      JsonSchema::compile(Json::parse(text));
      ADD_FAILURE() << kw << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::request);
      EXPECT_NE(std::string(e.what()).find(kw), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(JsonSchema::compile(Json::parse(R"({"required":["x"]})")), Error);
  EXPECT_THROW(JsonSchema::compile(Json::parse(R"({"$ref":"#/$defs/missing"})")), Error);
  EXPECT_THROW(JsonSchema::compile(Json::parse(R"({"type":"strings"})")), Error);
  for (
      const char* cyclic :
      {R"({"$ref":"#"})", R"({"anyOf":[{"$ref":"#"}]})",
       R"({"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"anyOf":[{"$ref":"#/$defs/a"}]}},"$ref":"#/$defs/a"})"})
    EXPECT_THROW(JsonSchema::compile(Json::parse(cyclic)), Error)
        << cyclic << " describes no value";
  EXPECT_THROW(JsonSchema::compile(Json::parse(R"({"type":"string","enum":["a",1]})")), Error)
      << "an enum value outside its type";
  EXPECT_THROW(JsonSchema::compile(Json::parse(R"({"type":"object","anyOf":[{}]})")), Error)
      << "anyOf beside other keywords would be silently ignored";
  EXPECT_THROW(JsonSchema::compile(Json::parse(R"({"enum":["a"],"maxLength":3})")), Error);
  std::string deep;
  for (int i = 0; i < 5000; ++i) deep += R"({"items":)";
  deep += "{}" + std::string(5000, '}');
  EXPECT_THROW(JsonSchema::compile(Json::parse(deep)), Error) << "bounded, not a stack overflow";
}

namespace {

// A vocabulary of single bytes, JSON fragments and multi-byte pieces, plus one end token.
std::shared_ptr<const ConstraintVocab> small_vocab(int32_t* end_id) {
  std::vector<std::string> bytes;
  for (int c = 0; c < 256; ++c) bytes.push_back(std::string(1, char(c)));
  for (const char* piece : {"{\"",  "\":",      "\",\"", "\"}",   "name", "age", "tags", "true",
                            "null", "  ",       "\n",    "12",    "0.",   "e-",  "[\"",  "\"]",
                            "ab",   "\xc3\xa9", "\\u00", "\"a\"", "},{",  ", ",  "k> {"})
    bytes.push_back(piece);
  bytes.push_back("");  // a special token: never inside the text
  *end_id = int32_t(bytes.size());
  bytes.push_back("");
  return std::make_shared<ConstraintVocab>(bytes, std::vector<int32_t>{*end_id});
}

}  // namespace

TEST(JsonConstraint, SampledOutputAlwaysParsesAndSatisfiesTheSchema) {
  int32_t end = 0;
  const auto vocab = small_vocab(&end);
  const int32_t V = int32_t(vocab->bytes.size());
  const auto s = schema(R"({"type":"object","properties":{
      "name":{"type":"string","maxLength":6},"age":{"type":"integer"},
      "tags":{"type":"array","items":{"type":"string"},"maxItems":3}},
      "required":["name","age","tags"],"additionalProperties":false})");
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  int finished = 0;
  for (uint64_t seed = 0; seed < 60; ++seed) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = seed;
    Sampler sampler(p, V, 0);
    auto c = std::make_shared<JsonConstraint>(vocab, s);
    sampler.constrain(c);
    std::string text;
    std::vector<float> logits(static_cast<size_t>(V));
    for (int step = 0; step < 400 && !c->finished(); ++step) {
      for (float& l : logits) l = normal(rng);
      logits[size_t(end)] = 5.0f;  // the model would like to stop at once: it may not
      const int32_t t = sampler.sample(logits);
      ASSERT_NE(vocab->bytes[size_t(t)], "") << "special tokens never appear inside the document";
      sampler.accept(t);
      text += vocab->bytes[size_t(t)];
    }
    if (!c->finished()) continue;  // random logits may wander for long inside a string
    ++finished;
    Json doc;
    ASSERT_NO_THROW(doc = Json::parse(text)) << text;
    ASSERT_TRUE(doc.is_object()) << text;
    EXPECT_EQ(doc.size(), 3u) << text;
    ASSERT_TRUE(doc.at("name").is_string()) << text;
    const std::string name = doc.at("name").get<std::string>();
    EXPECT_LE(std::count_if(name.begin(), name.end(), [](char ch) { return (ch & 0xC0) != 0x80; }),
              6)
        << "maxLength counts code points: " << text;
    EXPECT_TRUE(doc.at("age").is_number_integer()) << text;
    ASSERT_TRUE(doc.at("tags").is_array()) << text;
    EXPECT_LE(doc.at("tags").size(), 3u) << text;
  }
  EXPECT_GT(finished, 20) << "most runs should complete within 400 tokens";
}

TEST(JsonConstraint, AllowsExactlyTheTokensThatContinueTheDocument) {
  int32_t end = 0;
  const auto vocab = small_vocab(&end);
  const auto s = JsonSchema::any_object();
  JsonConstraint c(vocab, std::make_shared<JsonSchema>(s));
  std::vector<uint8_t> allowed;
  for (const char* prefix : {"", "{", "{\"a", "{\"a\":", "{\"a\": [1", "{\"a\":\"\xc3", "{}"}) {
    JsonConstraint k(vocab, std::make_shared<JsonSchema>(s));
    for (const char* ch = prefix; *ch; ++ch) k.accept(int32_t(uint8_t(*ch)));
    k.allowed(allowed);
    for (size_t id = 0; id < vocab->bytes.size(); ++id) {
      const std::string& t = vocab->bytes[id];
      bool want;
      if (std::string(prefix) == "{}") {
        want = int32_t(id) == end;  // a closed document ends at once, without trailing blanks
      } else if (int32_t(id) == end) {
        want = false;
      } else {
        // Brute force: the prefix plus the token is the start of some document, which for
        // these prefixes is exactly "the grammar advances over the whole text".
        JsonGrammar g(std::make_shared<JsonSchema>(s));
        want = !t.empty() && g.advance(std::string(prefix) + t);
      }
      EXPECT_EQ(bool(allowed[id]), want) << "after '" << prefix << "' token '" << t << "'";
    }
  }
  EXPECT_THROW(c.accept(int32_t('x')), Error) << "a token the mask refused";
}

TEST(DeferredConstraint, LeavesReasoningFreeAndConstrainsWhatFollowsTheMarker) {
  int32_t end = 0;
  const auto vocab = small_vocab(&end);
  const auto s = std::make_shared<JsonSchema>(JsonSchema::any_object());
  std::vector<uint8_t> allowed;
  for (const bool as_text : {true, false}) {
    // The marker as one token (the special id before the end token, as an added token with no
    // bytes of its own) or spelled out in bytes.
    const int32_t marker = end - 1;
    DeferredConstraint d(std::make_shared<JsonConstraint>(vocab, s), vocab, "</think>",
                         as_text ? -1 : marker);
    for (char ch : std::string("hmm, x"))
      d.accept(int32_t(uint8_t(ch)));  // free text, no JSON in sight
    d.allowed(allowed);
    EXPECT_TRUE(allowed[size_t('x')]) << "free before the marker";
    EXPECT_FALSE(d.active());
    if (as_text) {
      for (char ch : std::string("</thin")) d.accept(int32_t(uint8_t(ch)));
      EXPECT_FALSE(d.active());
      // One token ends the marker and starts the document: its tail goes to the grammar.
      d.accept(int32_t(std::find(vocab->bytes.begin(), vocab->bytes.end(), "k> {") -
                       vocab->bytes.begin()));
      EXPECT_TRUE(d.active());
      d.allowed(allowed);
      EXPECT_FALSE(allowed[size_t('{')]) << "the object is already open";
      EXPECT_TRUE(allowed[size_t('}')]);
    } else {
      d.accept(marker);
      EXPECT_TRUE(d.active());
      d.allowed(allowed);
      EXPECT_FALSE(allowed[size_t('x')]) << "after the marker only JSON may follow";
      EXPECT_TRUE(allowed[size_t('{')]);
      d.accept(int32_t('{'));
    }
    d.accept(int32_t('}'));
    EXPECT_TRUE(d.finished());
  }
}

TEST(JsonConstraint, NumbersNeverRunIntoADeadEnd) {
  int32_t end = 0;
  const auto vocab = small_vocab(&end);
  JsonConstraint c(vocab, schema(R"({"type":"array","items":{"type":"number"}})"));
  c.accept(int32_t('['));
  std::vector<uint8_t> allowed;
  for (int i = 0; i < 39; ++i) c.accept(int32_t('7'));
  c.allowed(allowed);
  EXPECT_FALSE(allowed[size_t('.')]) << "a '.' as the 40th byte could never be finished";
  EXPECT_TRUE(allowed[size_t('7')]);
  c.accept(int32_t('7'));
  c.allowed(allowed);
  EXPECT_FALSE(allowed[size_t('7')]);
  EXPECT_TRUE(allowed[size_t(']')] && allowed[size_t(',')]);
}
