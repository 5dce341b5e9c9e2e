// NumPy .npy (format 1.0) reading and writing of little-endian f32 / i32 / f64 arrays.
// Owns: the header dialect NumPy writes and reads. Does not own: other dtypes or .npz.
// `tern logits` writes these so any numpy script can check engine output directly.
#pragma once

#include <cstdio>
#include <string>

#include "core/tensor.h"

namespace tern::formats {

// Writes a contiguous f32, f64 or i32 tensor atomically (temp file, fsync, rename).
void write_npy(const std::string& path, const Tensor& t);

// Writes the same bytes to an open stream (stdout for `--out -`); not atomic, as a pipe cannot
// be. `name` names the stream in the ErrorKind::io message.
void write_npy(std::FILE* out, const Tensor& t, const std::string& name);

// Reads a C-order '<f4', '<f8' or '<i4' array into an owning tensor; ErrorKind::format naming
// the file for anything else (Fortran order, other dtypes, truncated data, bad header).
Tensor read_npy(const std::string& path);

}  // namespace tern::formats
