// Output that commands stream to stdout (`longnet generate`, `tokenizer encode`), for pipes that
// close early: `longnet generate ... | head` must end with status 0, not by SIGPIPE (main
// ignores the signal, so a write to a closed pipe fails with EPIPE instead).
#pragma once

#include <string>

namespace longnet {

// Writes text to stdout and flushes it. Returns false when the reader has gone (EPIPE): the
// caller stops its output cleanly (stdout_closed_note). Throws std::runtime_error naming the
// error on any other failure (a full disk).
bool stdout_write(const std::string& text);
// Whether stdout was closed by its reader: found by a write through stdout_write, or (for
// output written otherwise) by asking the pipe.
bool stdout_was_closed();
// The one short note on stderr when stdout was closed by its reader: "<command>: stdout was
// closed; stopped".
void stdout_closed_note(const std::string& command);

}  // namespace longnet
