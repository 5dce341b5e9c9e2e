# Sourced by the llama.cpp fixture scripts: installs npm node-llama-cpp@3.22.1 into $node_dir
# (default /tmp/tern-node-llama-cpp, or NODE_DIR) once, and puts logits.mjs beside it, so
# `(cd "$node_dir" && node logits.mjs MODEL.gguf IDS OUT.npy)` runs llama.cpp. Needs $here.
node_dir=${NODE_DIR:-/tmp/tern-node-llama-cpp}
if [ ! -d "$node_dir/node_modules/node-llama-cpp" ]; then
  mkdir -p "$node_dir"
  (cd "$node_dir" && npm init -y >/dev/null && npm install --ignore-scripts node-llama-cpp@3.22.1)
fi
cp "$here/logits.mjs" "$node_dir/logits.mjs"
