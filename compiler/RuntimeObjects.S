/* The runtime objects every generated library carries (see CMakeLists.txt). */
    .section .rodata
    .balign 16
    .global cnnc_runtime_objects_begin
cnnc_runtime_objects_begin:
    .incbin CNNC_RUNTIME_OBJECT
    .global cnnc_runtime_objects_end
cnnc_runtime_objects_end:
    .section .note.GNU-stack,"",@progbits
