# SPDX-License-Identifier: BSD-2-Clause
# cmake -DSCDOC=scdoc -DIN=page.3.scd -DOUT=page.3 -P THIS: one page,
# failing (and leaving no output) when scdoc rejects it.
execute_process(COMMAND ${SCDOC} INPUT_FILE ${IN} OUTPUT_FILE ${OUT}.tmp
  ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT}.tmp)
  message(FATAL_ERROR "scdoc failed on ${IN}: ${err}")
endif()
file(RENAME ${OUT}.tmp ${OUT})
