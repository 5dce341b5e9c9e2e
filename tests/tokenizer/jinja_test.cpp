// The Jinja subset piece by piece: each case is a template, a context and the exact output
// Python's Jinja2 (trim_blocks, lstrip_blocks) produces for it.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/chat_template.h"

namespace tern::tokenizer::test {
namespace {

std::string R(const std::string& src, const char* ctx = "{}") {
  return ChatTemplate(src).render_context(nlohmann::ordered_json::parse(ctx));
}

TEST(Jinja, ExpressionsAndFilters) {
  EXPECT_EQ(R("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ 1 / 2 }}"),
            "7 3 -4 1 1024 0.5");
  EXPECT_EQ(R("{{ 'a' ~ 1 ~ none }}|{{ none }}|{{ true }}|{{ 1.0 }}"), "a1None|None|True|1.0");
  EXPECT_EQ(
      R("{{ '  x  ' | trim }}|{{ 'AbC' | lower }}|{{ 'abc' | upper }}|{{ 'hello world' | title }}"),
      "x|abc|ABC|Hello World");
  EXPECT_EQ(R("{{ [3, 1, 2] | sort | join(',') }}|{{ 'abc' | list | length }}|{{ [1,2] | first "
              "}}{{ [1,2] | last }}"),
            "1,2,3|3|12");
  EXPECT_EQ(R("{{ 'a-b-c' | replace('-', '+') }}|{{ 'aaa'.replace('a', 'b', 2) }}"), "a+b+c|bba");
  EXPECT_EQ(R(R"({{ {"b": 1, "a": [true, none, "é\n"]} | tojson }})"),
            R"({"b": 1, "a": [true, null, "é\n"]})");
  EXPECT_EQ(R(R"({{ {"a": [1, {}], "b": []} | tojson(indent=2) }})"),
            "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}");
  EXPECT_EQ(R("{{ x | default('d') }}{{ '' | default('e', true) }}"), "de");
  EXPECT_EQ(R("{{ [1, 2, 3][::-1] }}|{{ 'hello'[1:3] }}|{{ [1, 2, 3][-1] }}|{{ 'abc'[-2:] }}"),
            "[3, 2, 1]|el|3|bc");
  EXPECT_EQ(R("{{ 'a' in 'cat' }} {{ 2 not in [1, 2] }} {{ 'k' in {'k': 1} }}"), "True False True");
  EXPECT_EQ(R("{{ 'x' if false else 'y' }}{{ 'z' if true }}"), "yz");
}

TEST(Jinja, StringMethods) {
  EXPECT_EQ(
      R("{{ 'a</think>b</think>c'.split('</think>')[-1] }}|{{ ' a  b '.split() | join('_') }}"),
      "c|a_b");
  EXPECT_EQ(
      R("{{ '\\n\\nx\\n'.strip('\\n') }}|{{ 'xxhixx'.lstrip('x') }}|{{ 'xxhixx'.rstrip('x') }}"),
      "x|hixx|xxhi");
  EXPECT_EQ(
      R("{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ 'hi'.upper() }}"),
      "True True HI");
  EXPECT_EQ(R("{{ 'a,b,c'.split(',', 1) }}"), "['a', 'b,c']");
}

TEST(Jinja, TestsAndObjects) {
  EXPECT_EQ(R("{{ x is defined }} {{ none is none }} {{ 's' is string }} {{ 1 is number }} {{ {} "
              "is mapping }} {{ x is not defined }}"),
            "False True True True True True");
  EXPECT_EQ(
      R("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", R"({"d": {"b": 1, "a": 2}})"),
      "b=1;a=2;");
  EXPECT_EQ(R("{{ d.get('z', 9) }}{{ d['b'] }}{{ d.b }}", R"({"d": {"b": 1}})"), "911");
}

TEST(Jinja, StatementsAndScoping) {
  EXPECT_EQ(R("{% for m in xs %}{{ loop.index }}{{ m }}{% if loop.last %}!{% endif %}{% endfor %}",
              R"({"xs": ["a", "b"]})"),
            "1a2b!");
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{% endfor %}"), "24");
  EXPECT_EQ(R("{% for x in [1, 2, 3] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% "
              "break %}{% endif %}{{ x }}{% endfor %}"),
            "1");
  // set inside a loop does not leak; a namespace does.
  EXPECT_EQ(R("{% set a = 1 %}{% set ns = namespace(b=1) %}{% for x in [5] %}{% set a = x %}{% set "
              "ns.b = x %}{% endfor %}{{ a }}{{ ns.b }}"),
            "15");
  EXPECT_EQ(R("{% if false %}a{% elif true %}b{% else %}c{% endif %}"), "b");
  EXPECT_EQ(R("{% macro greet(name, p='!') %}hi {{ name }}{{ p }}{% endmacro %}{{ greet('bob') "
              "}}{{ greet('x', p='?') }}"),
            "hi bob!hi x?");
  EXPECT_EQ(R("{% set s %}in{{ 1 }}{% endset %}[{{ s }}]"), "[in1]");
  EXPECT_EQ(R("{{ range(3) | list }}"), "[0, 1, 2]");
}

TEST(Jinja, WhitespaceControl) {
  // trim_blocks + lstrip_blocks, as transformers configures Jinja, and "-" markers.
  EXPECT_EQ(R("{% if true %}\n  x\n{% endif %}\n"), "  x\n");
  EXPECT_EQ(R("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(R("a {# comment #}\nb"), "a b");
  EXPECT_EQ(R("x\n    {% if true %}y{% endif %}"), "x\ny");
  EXPECT_EQ(R("{{ 'a' }}\n{{- 'b' }}"), "ab");
}

}  // namespace
}  // namespace tern::tokenizer::test

namespace tern::tokenizer::test {
namespace {

TEST(Jinja, HostileTemplatesFailCleanly) {
  EXPECT_THROW(R("{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}"),
               tern::Error);
  EXPECT_THROW(R("{{ " + std::string(100000, '-') + "1 }}"), tern::Error);
  std::string nested;
  for (int i = 0; i < 5000; ++i) nested += "{% if true %}";
  EXPECT_THROW(R(nested), tern::Error);
#ifndef __SANITIZE_ADDRESS__
  // Five million interpreted steps before the limit trips: about a minute under ASan, where
  // they add nothing the release pass does not check (the loop code is the same).
  EXPECT_THROW(
      R("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
      tern::Error);
  EXPECT_THROW(R("{% for i in range(10000) %}{{ 'x' * 100000 }}{% endfor %}"), tern::Error);
#endif
}

}  // namespace
}  // namespace tern::tokenizer::test
