# The layering rule, checked on every build (cmake -P, run by the
# check_layers target): a layer includes only its own headers and those of
# the layers below it. Layers, bottom up:
#   kernels -> models -> (augment, io) -> runtime -> tools
# (augment and io are siblings: neither includes the other). Public headers in
# include/loom belong to the layer that implements them. An upward include
# fails the build naming the file, the header and the rule.
cmake_minimum_required(VERSION 3.18)
set(root ${CMAKE_CURRENT_LIST_DIR}/..)

set(allowed_kernels kernels)
set(allowed_models kernels models)
set(allowed_augment kernels augment)
set(allowed_io kernels models io)
set(allowed_runtime kernels models augment io runtime)

# the layer of each public header
set(public_kernels error types)
set(public_models graph exec zoo)
set(public_augment augment)
set(public_io dataset checkpoint ckdir onnx)
set(public_runtime loader trainer optim schedule fit train_state dist)

function(layer_of_header hdr out)
  # "loom/graph.h" -> models; "io/fs.h" -> io; other (system, local) -> ""
  set(layer "")
  if(hdr MATCHES "^loom/([a-z_]+)\\.h$")
    set(name ${CMAKE_MATCH_1})
    foreach(l kernels models augment io runtime)
      if(name IN_LIST public_${l})
        set(layer ${l})
      endif()
    endforeach()
    if(name STREQUAL "loom")
      set(layer tools)
    endif()
    if(layer STREQUAL "")
      set(layer unknown)
    endif()
  elseif(hdr MATCHES "^(kernels|models|augment|io|runtime|tools)/")
    set(layer ${CMAKE_MATCH_1})
  endif()
  set(${out} ${layer} PARENT_SCOPE)
endfunction()

set(errors "")
function(check_file file layer)
  file(STRINGS ${file} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line ${lines})
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\".*" "\\1" hdr "${line}")
    if(hdr MATCHES "^\\.\\./([a-z]+)/")
      set(hdr "${CMAKE_MATCH_1}/x.h")  # "../io/jfield.h" counts as io
    endif()
    layer_of_header("${hdr}" dep)
    if("${dep}" STREQUAL "" OR "${dep}" STREQUAL "${layer}")
      continue()
    endif()
    if(NOT "${dep}" IN_LIST allowed_${layer})
      file(RELATIVE_PATH rel ${root} ${file})
      set(errors "${errors}\n  ${rel} (${layer}) includes \"${hdr}\" (${dep}): ${layer} may include only ${allowed_${layer}}" PARENT_SCOPE)
    endif()
  endforeach()
endfunction()

foreach(layer kernels models augment io runtime)
  file(GLOB files ${root}/${layer}/*.c ${root}/${layer}/*.h)
  foreach(name ${public_${layer}})
    list(APPEND files ${root}/include/loom/${name}.h)
  endforeach()
  foreach(f ${files})
    check_file(${f} ${layer})
  endforeach()
endforeach()

if(errors)
  message(FATAL_ERROR "layering: upward includes (DESIGN.md, layout):${errors}")
endif()
