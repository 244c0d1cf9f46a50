# The generation commands end to end on the CPU: train tests/train_small.yaml for a few steps (2
# ranks), then from its checkpoint `longnet generate` (one prompt streamed; a batch of prompts
# longer than the training context; a long prompt prefilled on 2 ranks), `longnet eval` over
# context lengths on 1 and 2 ranks (the same numbers) with JSON and a plot, `longnet bench
# generate` with tiny sizes, and the tokenizer a checkpoint records.
# In: LONGNET, MPIRUN (|-separated), CONFIG, DATA_SRC, WORK.
string(REPLACE "|" ";" mpirun "${MPIRUN}")
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
function(run out_var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  TIMEOUT 300)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(${out_var} "${out}${err}" PARENT_SCOPE)
endfunction()
function(expect text pattern what)
  if(NOT text MATCHES "${pattern}")
    message(FATAL_ERROR "${what}: output lacks '${pattern}':\n${text}")
  endif()
endfunction()

run(out ${mpirun} ${LONGNET} train ${CONFIG} data.source=${DATA_SRC} data.path=${WORK}/data.tokens
    train.steps=6 checkpoint.dir=${WORK}/ckpt log.metrics=${WORK}/m.jsonl checkpoint.resume=none)
file(GLOB ckpts "${WORK}/ckpt/step_*.ckpt")
list(GET ckpts 0 ckpt)

# One prompt: greedy is deterministic, so two runs print the same text.
run(a ${LONGNET} generate --checkpoint ${ckpt} --prompt "int main(" --max-new-tokens 40 --greedy
    --stats --device cpu)
run(b ${LONGNET} generate --checkpoint ${ckpt} --prompt "int main(" --max-new-tokens 40 --greedy
    --device cpu)
expect("${a}" "generate: checkpoint .* 40 token.s. per prompt" "generate --stats")
string(REGEX REPLACE "generate: [^\n]*\n" "" a_text "${a}")
if(NOT a_text STREQUAL b)
  message(FATAL_ERROR "greedy generation is not deterministic:\n[${a_text}]\n[${b}]")
endif()
# A batch of prompts of different lengths, one longer than the training context (128 tokens).
string(REPEAT "#include <stdio.h> " 20 long_prompt)
file(WRITE ${WORK}/prompts.txt "static\n\n${long_prompt}\nvoid f(int x) {\n")
run(out ${LONGNET} generate --checkpoint ${ckpt} --prompts-file ${WORK}/prompts.txt
    --max-new-tokens 30 --temperature 0.8 --top-k 20 --top-p 0.9 --seed 3 --device cpu)
# Each result is headed by its prompt's line in the file (blank lines are skipped).
expect("${out}" "=== line 1 ===\nstatic" "generate --prompts-file")
expect("${out}" "=== line 4 ===\nvoid f" "generate --prompts-file")
# A file of one line prints in the same format.
file(WRITE ${WORK}/one_prompt.txt "\n\nstatic\n")
run(out ${LONGNET} generate --checkpoint ${ckpt} --prompts-file ${WORK}/one_prompt.txt
    --max-new-tokens 5 --greedy --device cpu)
expect("${out}" "=== line 3 ===\nstatic" "generate --prompts-file of one line")
# Lines end at LF, CRLF or a lone CR (old Mac editors).
file(WRITE ${WORK}/cr_prompts.txt "\r\rstatic\r\nvoid f\r")
run(out ${LONGNET} generate --checkpoint ${ckpt} --prompts-file ${WORK}/cr_prompts.txt
    --max-new-tokens 5 --greedy --device cpu)
expect("${out}" "=== line 3 ===\nstatic" "generate --prompts-file with CR line ends")
expect("${out}" "=== line 4 ===\nvoid f" "generate --prompts-file with CR line ends")

# Under mpirun the prefill of a prompt of several blocks (128 tokens) is split over the ranks;
# greedy output equals one rank's. A randomly initialised model (its output depends on every
# token; the few-step checkpoint's hardly does), compared byte for byte through files.
function(run_to_file file)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_FILE ${file} ERROR_VARIABLE err
                  TIMEOUT 300)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${err}")
  endif()
endfunction()
function(expect_same_file a b what)
  file(SHA256 ${a} ha)
  file(SHA256 ${b} hb)
  if(NOT ha STREQUAL hb)
    file(READ ${a} ta HEX)
    file(READ ${b} tb HEX)
    message(FATAL_ERROR "${what}:\n${ta}\n${tb}")
  endif()
endfunction()
set(gen_model --config ${CONFIG} --random-init --max-new-tokens 30 --greedy --device cpu)
set(gen_args generate ${gen_model} --seed 3)
run_to_file(${WORK}/gen1.out ${LONGNET} ${gen_args} --prompt "${long_prompt}")
run_to_file(${WORK}/gen2.out ${mpirun} ${LONGNET} ${gen_args} --prompt "${long_prompt}")
expect_same_file(${WORK}/gen1.out ${WORK}/gen2.out "generate on 2 ranks differs from 1 rank")
run_to_file(${WORK}/gen_other.out ${LONGNET} ${gen_args} --prompt "something else")
file(SHA256 ${WORK}/gen1.out h1)
file(SHA256 ${WORK}/gen_other.out h_other)
if(h1 STREQUAL h_other)
  message(FATAL_ERROR "generate: two prompts gave the same text; the checks above prove nothing")
endif()
# A --prompts-file of very different lengths prefills in groups of similar lengths, then
# generates as one batch: each line's text is the one it gives alone (greedy), on 1 and 2 ranks.
file(WRITE ${WORK}/long_prompt.txt "${long_prompt}")
file(WRITE ${WORK}/mixed_prompts.txt "something else\n${long_prompt}\n")
foreach(ranks 1 2)
  set(launcher)
  if(ranks EQUAL 2)
    set(launcher ${mpirun})
  endif()
  run_to_file(${WORK}/mixed${ranks}.out ${launcher} ${LONGNET} ${gen_args}
              --prompts-file ${WORK}/mixed_prompts.txt)
  execute_process(COMMAND bash -c "cd '${WORK}' && { printf '=== line 1 ===\nsomething else'; \
cat gen_other.out; printf '=== line 2 ===\n'; cat long_prompt.txt gen1.out; } > mixed_expected")
  expect_same_file(${WORK}/mixed${ranks}.out ${WORK}/mixed_expected
                   "generate --prompts-file of two lengths (${ranks} rank(s)) differs from each alone")
endforeach()
execute_process(COMMAND ${LONGNET} ${gen_args} --prompts-file ${WORK}/mixed_prompts.txt --stats
                OUTPUT_QUIET ERROR_VARIABLE err)
expect("${err}" "in 2 groups of similar lengths" "generate --stats of prompts in groups")
# Every rank prefills rank 0's tokens, whatever prompt file the others read (MPMD: rank 1's
# --prompt-file holds another prompt, as a file that differs between hosts would).
list(GET mpirun 0 mpi_exe)
list(SUBLIST mpirun 3 -1 mpi_flags)
file(MAKE_DIRECTORY ${WORK}/host_a ${WORK}/host_b)
file(WRITE ${WORK}/host_a/prompt.txt "${long_prompt}")
file(WRITE ${WORK}/host_b/prompt.txt "something else")
run_to_file(${WORK}/gen_mpmd.out ${mpi_exe} ${mpi_flags} -np 1 --wdir ${WORK}/host_a ${LONGNET}
            ${gen_args} --prompt-file prompt.txt : -np 1 --wdir ${WORK}/host_b ${LONGNET}
            ${gen_args} --prompt-file prompt.txt)
expect_same_file(${WORK}/gen1.out ${WORK}/gen_mpmd.out
                 "generate: rank 1's own prompt file changed the output")
# Only rank 0 reads the prompt file: one that exists on rank 0's host alone is enough.
file(MAKE_DIRECTORY ${WORK}/host_c)
run_to_file(${WORK}/gen_mpmd2.out ${mpi_exe} ${mpi_flags} -np 1 --wdir ${WORK}/host_a ${LONGNET}
            ${gen_args} --prompt-file prompt.txt : -np 1 --wdir ${WORK}/host_c ${LONGNET}
            ${gen_args} --prompt-file prompt.txt)
expect_same_file(${WORK}/gen1.out ${WORK}/gen_mpmd2.out
                 "generate: a prompt file on rank 0's host only")
# A stop signal to every rank (what a scheduler sends; mpirun forwards SIGUSR1 so too, where
# it is mpirun itself and not a wrapper script) stops generation cleanly on rank 0, with its
# message and status (128 + SIGUSR1); the other ranks, done after the prefill, wait for it
# instead of dying of the signal.
string(REPLACE ";" " " mpirun_line "${mpirun}")
file(WRITE ${WORK}/stop.sh "cd '${WORK}'
${mpirun_line} '${LONGNET}' generate --config '${CONFIG}' --random-init --device cpu --seed 3 \
  --max-new-tokens 1000000 --prompt stop_marker > stop.out 2> stop.err &
p=$!
(sleep 100; kill $p) > /dev/null 2>&1 &
w=$!
for _ in $(seq 600); do [ -s stop.out ] && break; sleep 0.1; done
[ -s stop.out ] || { echo 'no output in 60 s'; kill $p; pkill -P $w; wait $p; exit 1; }
pkill -USR1 -f '^${LONGNET} generate .*--prompt stop_marker'
wait $p
rc=$?
pkill -P $w
echo \"rc=$rc\"
")
execute_process(COMMAND bash ${WORK}/stop.sh OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
file(READ ${WORK}/stop.err stop_err)
if(NOT out MATCHES "rc=[1-9]" OR NOT stop_err MATCHES "generate: stopped by signal 10"
   OR stop_err MATCHES "second stop signal|exited on signal")
  message(FATAL_ERROR "generate under mpirun stopped by SIGUSR1: ${out}\n${stop_err}")
endif()
# A --prompt text is on every rank's command line: another one there is refused.
execute_process(COMMAND ${mpi_exe} ${mpi_flags} -np 1 ${LONGNET} ${gen_args} --prompt x
                : -np 1 ${LONGNET} ${gen_args} --prompt y
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "rank 1 was started with --prompt=y, rank 0 with --prompt=x")
  message(FATAL_ERROR "generate: ranks with different --prompt were not refused (${rc}):\n${err}")
endif()
# A rank whose model differs from rank 0's (its config says another feed-forward width here;
# another file at the same path on another host in practice) is refused, naming the rank.
file(READ ${CONFIG} config_text)
string(REPLACE "dim_feedforward: 128" "dim_feedforward: 96" other_config "${config_text}")
if(other_config STREQUAL config_text)
  message(FATAL_ERROR "generate: ${CONFIG} has no 'dim_feedforward: 128' to change")
endif()
file(WRITE ${WORK}/other_model.yaml "${other_config}")
string(REPLACE "${CONFIG}" "${WORK}/other_model.yaml" other_model "${gen_model}")
execute_process(COMMAND ${mpi_exe} ${mpi_flags} -np 1 ${LONGNET} ${gen_args} --prompt x
                : -np 1 ${LONGNET} generate ${other_model} --seed 3 --prompt x
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "rank 1 loaded another model than rank 0")
  message(FATAL_ERROR "generate: ranks with different models were not refused (${rc}):\n${err}")
endif()
# A rank started with another flag (here --seed) is refused at once, naming the flag.
execute_process(COMMAND ${mpi_exe} ${mpi_flags} -np 1 ${LONGNET} ${gen_args} --prompt x
                : -np 1 ${LONGNET} generate ${gen_model} --prompt x --seed 4
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "rank 1 was started with --seed=4, rank 0 with --seed=3")
  message(FATAL_ERROR "generate: ranks with different flags were not refused (${rc}):\n${err}")
endif()
run(two ${mpirun} ${LONGNET} ${gen_args} --prompt "${long_prompt}" --stats)
expect("${two}" "prefill [^\n]*2 rank" "generate under mpirun --stats")

# Loss against context length, the same on 1 and 2 ranks.
set(eval_args eval --checkpoint ${ckpt} --data ${WORK}/data.tokens --context-lens 32,64,128,256
    --batches 2 --batch-size 2 --device cpu)
# (the plot where the build's python has matplotlib: without it eval exits 1 after the JSON)
set(plot_args)
if(LONGNET_PYTHON)
  execute_process(COMMAND ${LONGNET_PYTHON} -c "import matplotlib" RESULT_VARIABLE no_mpl
                  OUTPUT_QUIET ERROR_QUIET)
  if(no_mpl EQUAL 0)
    set(plot_args --plot ${WORK}/eval1.png)
  endif()
endif()
run(one ${LONGNET} ${eval_args} --json ${WORK}/eval1.json ${plot_args})
run(two ${mpirun} ${LONGNET} ${eval_args} --json ${WORK}/eval2.json)
expect("${one}" "256 +[0-9.]+ +[0-9.]+ +128 .*beyond training" "eval")
file(READ ${WORK}/eval1.json j1)
file(READ ${WORK}/eval2.json j2)
foreach(j j1 j2)
  string(REGEX MATCHALL "\"bits_per_byte\":[0-9.]+" ${j}_bpb "${${j}}")
endforeach()
list(LENGTH j1_bpb n)
if(NOT n EQUAL 4)
  message(FATAL_ERROR "eval: expected 4 rows in ${WORK}/eval1.json:\n${j1}")
endif()
message(STATUS "eval 1 rank: ${j1_bpb}\neval 2 ranks: ${j2_bpb}")

# The benchmark with tiny sizes.
run(out ${LONGNET} bench generate --checkpoint ${ckpt} --device cpu --dtype float32
    --prompt-lens 300,1000 --batches 1,3 --steps 4 --warmup 2 --json ${WORK}/bench.json)
expect("${out}" "1000 +3 " "bench generate")
file(READ ${WORK}/bench.json bench)
expect("${bench}" "\"bound_tokens_per_s\"" "bench generate --json")
# --cache-fill full lengthens the prompt so that the device-timed steps (after 2 warm-up and 4
# per-token steps) end at the last position of the segments' cycle: there the fill is 1.
# --trace writes a Kineto trace of 8 more steps, after the timed ones.
file(REMOVE_RECURSE ${WORK}/traces)
run(out ${LONGNET} bench generate --checkpoint ${ckpt} --device cpu --dtype float32
    --prompt-lens 300 --batches 2 --steps 4 --warmup 2 --cache-fill full --json ${WORK}/full.json
    --trace ${WORK}/traces)
file(GLOB traces ${WORK}/traces/generate_p*_b2.json)
list(LENGTH traces n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "bench generate --trace: expected one trace in ${WORK}/traces; got ${traces}")
endif()
file(READ ${traces} trace LIMIT 1000000)
expect("${trace}" "aten::linear" "bench generate --trace")
file(READ ${WORK}/full.json full)
expect("${full}" "\"cache_fill\":1[,}]" "bench generate --cache-fill full")
string(REGEX MATCH "\"segment_cycle\":([0-9]+)" _ "${full}")
set(cycle "${CMAKE_MATCH_1}")
string(REGEX MATCH "\"position\":([0-9]+)" _ "${full}")
math(EXPR end_mod "(${CMAKE_MATCH_1} + 4) % ${cycle}")
if(NOT end_mod EQUAL 0)
  message(FATAL_ERROR "bench generate --cache-fill full: timed steps from position "
                      "${CMAKE_MATCH_1} do not end at a cycle of ${cycle}")
endif()
# A checkpoint records the tokenizer of its training data: once the dataset at its data.path is
# rebuilt with another tokenizer, eval refuses that data instead of scoring it.
run(out ${mpirun} ${LONGNET} train ${CONFIG} data.source=${DATA_SRC} data.path=${WORK}/tk_data
    model.vocab_size=300 train.steps=3 optim.warmup_steps=0 checkpoint.dir=${WORK}/tk_ckpt
    log.dir=${WORK}/tk_run checkpoint.resume=none)
file(REMOVE_RECURSE ${WORK}/tk_data)
run(out ${LONGNET} data build --tokenizer bytes:eot --source ${DATA_SRC} --out ${WORK}/tk_data
    --no-progress)
execute_process(COMMAND ${LONGNET} eval --checkpoint ${WORK}/tk_ckpt/step_00000003.ckpt
                --context-lens 32 --batches 1 --device cpu
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "was trained on data of tokenizer bytes")
  message(FATAL_ERROR "eval scored data of another tokenizer than the checkpoint's (${rc}):\n"
                      "${out}${err}")
endif()
message(STATUS "generate end to end: all passed")
