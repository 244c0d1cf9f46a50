// The constructors behind tokenizer_open (tokenizer.h), one per kind, each in its own file.
// Every build has all of them; a kind whose library was not found at configure time throws a
// std::runtime_error saying what to install.
#pragma once

#include <memory>
#include <string>

#include "longnet/train/tokenizer.h"

namespace longnet {

std::unique_ptr<Tokenizer> bytes_tokenizer_open(bool with_eot);          // tokenizer_bytes.cpp
std::unique_ptr<Tokenizer> tiktoken_open(const std::string& path);       // tokenizer_tiktoken.cpp
std::unique_ptr<Tokenizer> sentencepiece_open(const std::string& path);  // ..._sentencepiece.cpp
bool tiktoken_available();
bool sentencepiece_available();

// The whole of a tokenizer's model file (at most 1 GiB). Throws std::runtime_error naming the
// file and `what` ("tiktoken ranks file") when it is missing, unreadable or too large.
std::string tokenizer_file_read(const std::string& path, const std::string& what);

}  // namespace longnet
