// Compiling a JSON Schema document into JsonSchema's node table (see json_schema.h).
#include "infer/json_schema.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace tern::infer {

using Json = nlohmann::ordered_json;

namespace {

[[noreturn]] void refuse(const std::string& where, const std::string& what) {
  fail(ErrorKind::request,
       "JSON schema" + (where.empty() ? std::string() : " at " + where) + ": " + what);
}

// Keywords with no effect on which documents are valid (or none the grammar needs).
const std::set<std::string>& ignored_keywords() {
  static const std::set<std::string> k = {
      "$schema",        "$id",         "$comment",  "title",
      "description",    "default",     "examples",  "format",
      "deprecated",     "readOnly",    "writeOnly", "$anchor",
      "$defs",          "definitions", "strict",    "contentMediaType",
      "contentEncoding"};
  return k;
}

const std::set<std::string>& enforced_keywords() {
  static const std::set<std::string> k = {
      "type",      "properties", "required", "additionalProperties",
      "items",     "minItems",   "maxItems", "minLength",
      "maxLength", "enum",       "const",    "anyOf",
      "oneOf",     "$ref"};
  return k;
}

int64_t count_of(const Json& j, const std::string& where, const char* key) {
  const Json& v = j.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() < 0)
    refuse(where, std::string("'") + key + "' must be a non-negative integer");
  return v.get<int64_t>();
}

uint8_t type_bit(const std::string& t, const std::string& where) {
  if (t == "null") return kJsonNull;
  if (t == "boolean") return kJsonBoolean;
  if (t == "integer") return kJsonInteger;
  if (t == "number") return kJsonNumber | kJsonInteger;
  if (t == "string") return kJsonString;
  if (t == "array") return kJsonArray;
  if (t == "object") return kJsonObject;
  refuse(where, "unknown type '" + t + "'");
}

}  // namespace

JsonSchema::JsonSchema() : nodes_(1) {}

JsonSchema JsonSchema::any_object() {
  JsonSchema s;
  SchemaNode obj;
  obj.types = kJsonObject;
  s.nodes_.push_back(obj);
  s.root_ = 1;
  return s;
}

class SchemaCompiler {
 public:
  explicit SchemaCompiler(const Json& doc) : doc_(doc) {}

  JsonSchema run() {
    JsonSchema s;
    out_ = &s;
    s.root_ = compile(doc_, "#");
    check_productive(s);
    return s;
  }

  // Every alternative chain must end in a node that describes a value: {"$ref": "#"} alone, or
  // anyOf lists of such references, would let the grammar accept nothing at all.
  static void check_productive(const JsonSchema& s) {
    std::vector<uint8_t> ok(s.nodes_.size(), 0);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t i = 0; i < ok.size(); ++i) {
        if (ok[i]) continue;
        const SchemaNode& n = s.nodes_[i];
        bool good = n.any_of.empty();
        for (int32_t alt : n.any_of) good = good || ok[size_t(alt)];
        if (good) ok[i] = 1, changed = true;
      }
    }
    if (std::find(ok.begin(), ok.end(), 0) != ok.end())
      refuse("", "a $ref or anyOf refers back to itself without ever describing a value");
  }

 private:
  int32_t compile(const Json& j, const std::string& where) {
    // Schemas come from clients: bound the recursion (and the table) so none can exhaust the
    // stack or memory.
    struct Depth {
      int& d;
      explicit Depth(int& x) : d(++x) {}
      ~Depth() { --d; }
    } depth(depth_);
    if (depth_ > kMaxDepth) refuse(where, "nested deeper than " + std::to_string(kMaxDepth));
    if (out_->nodes_.size() > kMaxNodes)
      refuse(where, "more than " + std::to_string(kMaxNodes) + " subschemas");
    if (j.is_boolean()) {
      if (j.get<bool>()) return JsonSchema::kAny;
      refuse(where, "the schema 'false' accepts no value");
    }
    if (!j.is_object()) refuse(where, "a schema must be an object or a boolean");
    for (const auto& [key, value] : j.items()) {
      (void)value;
      if (!enforced_keywords().count(key) && !ignored_keywords().count(key))
        refuse(where, "keyword '" + key +
                          "' cannot be guaranteed by constrained decoding (supported: type, "
                          "properties, required, additionalProperties, items, minItems, "
                          "maxItems, minLength, maxLength, enum, const, anyOf, oneOf, $ref)");
    }
    if (j.contains("$ref")) {
      if (j.size() > 1) {
        for (const auto& [key, value] : j.items())
          if (key != "$ref" && enforced_keywords().count(key))
            refuse(where, "'$ref' beside '" + key + "' is not supported");
      }
      return reference(j.at("$ref"), where);
    }
    const int32_t index = int32_t(out_->nodes_.size());
    out_->nodes_.emplace_back();
    SchemaNode n;
    for (const char* alt : {"anyOf", "oneOf"})
      if (j.contains(alt)) {
        const Json& list = j.at(alt);
        if (!list.is_array() || list.empty())
          refuse(where, std::string("'") + alt + "' must be a non-empty array");
        for (const char* other :
             {"type", "properties", "required", "additionalProperties", "items", "minItems",
              "maxItems", "minLength", "maxLength", "enum", "const"})
          if (j.contains(other))
            refuse(where, std::string("'") + alt + "' beside '" + other +
                              "' is not supported (move it into each alternative)");
        for (size_t i = 0; i < list.size(); ++i)
          n.any_of.push_back(compile(list[i], where + "/" + alt + "/" + std::to_string(i)));
      }
    if (j.contains("type")) {
      const Json& t = j.at("type");
      n.types = 0;
      if (t.is_string()) {
        n.types = type_bit(t.get<std::string>(), where);
      } else if (t.is_array() && !t.empty()) {
        for (const Json& x : t) {
          if (!x.is_string()) refuse(where, "'type' entries must be strings");
          n.types |= type_bit(x.get<std::string>(), where);
        }
      } else {
        refuse(where, "'type' must be a string or a non-empty array of strings");
      }
    }
    if (j.contains("enum") || j.contains("const")) {
      for (const char* other : {"properties", "required", "additionalProperties", "items",
                                "minItems", "maxItems", "minLength", "maxLength"})
        if (j.contains(other))
          refuse(where, std::string("'enum'/'const' beside '") + other + "' is not supported");
      if (j.contains("const")) n.literals.push_back(j.at("const").dump());
      if (j.contains("enum")) {
        const Json& e = j.at("enum");
        if (!e.is_array() || e.empty()) refuse(where, "'enum' must be a non-empty array");
        for (const Json& v : e) n.literals.push_back(v.dump());
      }
      // The literals are the whole constraint; a "type" beside them must admit each one.
      for (const std::string& text : n.literals) {
        const Json v = Json::parse(text);
        const uint8_t bit = v.is_null()             ? kJsonNull
                            : v.is_boolean()        ? kJsonBoolean
                            : v.is_number_integer() ? kJsonInteger
                            : v.is_number()         ? kJsonNumber
                            : v.is_string()         ? kJsonString
                            : v.is_array()          ? kJsonArray
                                                    : kJsonObject;
        if (!(n.types & bit))
          refuse(where, "the enum/const value " + text + " is not of its 'type'");
      }
    }
    if (j.contains("properties")) {
      const Json& props = j.at("properties");
      if (!props.is_object()) refuse(where, "'properties' must be an object");
      if (props.size() > 64) refuse(where, "more than 64 declared properties");
      for (const auto& [name, sub] : props.items()) {
        const std::string quoted = Json(name).dump();
        n.properties.push_back({quoted.substr(1, quoted.size() - 2), 0});
        n.properties.back().second = compile(sub, where + "/properties/" + name);
      }
    }
    if (j.contains("required")) {
      const Json& req = j.at("required");
      if (!req.is_array()) refuse(where, "'required' must be an array of property names");
      for (const Json& r : req) {
        if (!r.is_string()) refuse(where, "'required' must be an array of property names");
        const std::string quoted = Json(r.get<std::string>()).dump();
        const std::string key = quoted.substr(1, quoted.size() - 2);
        size_t i = 0;
        while (i < n.properties.size() && n.properties[i].first != key) ++i;
        if (i == n.properties.size())
          refuse(where, "required property '" + r.get<std::string>() +
                            "' is not declared in 'properties'");
        n.required |= uint64_t(1) << i;
      }
    }
    if (j.contains("additionalProperties")) {
      const Json& a = j.at("additionalProperties");
      n.additional =
          a.is_boolean() && !a.get<bool>() ? -1 : compile(a, where + "/additionalProperties");
    }
    if (j.contains("items")) n.items = compile(j.at("items"), where + "/items");
    if (j.contains("minItems")) n.min_items = count_of(j, where, "minItems");
    if (j.contains("maxItems")) n.max_items = count_of(j, where, "maxItems");
    if (j.contains("minLength")) n.min_length = count_of(j, where, "minLength");
    if (j.contains("maxLength")) n.max_length = count_of(j, where, "maxLength");
    if (n.max_items >= 0 && n.min_items > n.max_items)
      refuse(where, "'minItems' is larger than 'maxItems'");
    if (n.max_length >= 0 && n.min_length > n.max_length)
      refuse(where, "'minLength' is larger than 'maxLength'");
    out_->nodes_[size_t(index)] = std::move(n);
    return index;
  }

  int32_t reference(const Json& ref, const std::string& where) {
    if (!ref.is_string()) refuse(where, "'$ref' must be a string");
    const std::string r = ref.get<std::string>();
    if (auto it = refs_.find(r); it != refs_.end()) return it->second;
    if (r != "#" && r.rfind("#/", 0) != 0)
      refuse(where, "'$ref' " + r + " is not supported (only references inside this schema)");
    const Json* target = &doc_;
    try {
      if (r != "#") target = &doc_.at(Json::json_pointer(r.substr(1)));
    } catch (const Json::exception&) {
      refuse(where, "'$ref' " + r + " names nothing in this schema");
    }
    // Reserve the node first so a recursive reference resolves to it.
    const int32_t index = int32_t(out_->nodes_.size());
    out_->nodes_.emplace_back();
    refs_[r] = index;
    SchemaNode alias;
    alias.any_of = {compile(*target, r)};
    out_->nodes_[size_t(index)] = std::move(alias);
    return index;
  }

  static constexpr int kMaxDepth = 64;
  static constexpr size_t kMaxNodes = 10000;
  const Json& doc_;
  JsonSchema* out_ = nullptr;
  int depth_ = 0;
  std::map<std::string, int32_t> refs_;
};

JsonSchema JsonSchema::compile(const nlohmann::ordered_json& schema) {
  return SchemaCompiler(schema).run();
}

}  // namespace tern::infer
