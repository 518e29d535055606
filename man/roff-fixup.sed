# SPDX-License-Identifier: MIT
# Applied to each page Doxygen writes (see "manual pages" in Makefile.am):
#  - double quotes: Doxygen 1.9's man output turns '"' into "'"
#    (doxygen#11271, fixed in 1.13), which would make the examples wrong C;
#    man/doxygen-filter.sed marks each '"' with a zero-width space (U+200B)
#    after it, so a quote so marked is made \(dq again, whichever it became;
#  - a backslash in a macro's argument (a brief in .RI "...") is \(rs: there
#    Doxygen's "\\" is read twice, and "\\n" would be a number register;
#  - a NAME line without a description (a struct with no comment) gets
#    one, so that whatis and apropos can read it;
#  - the synopsis starts with the one include a program needs;
#  - code examples are indented, as in other manual pages, and text lines
#    lose the one space Doxygen puts before some of them;
#  - no "Author: Generated automatically by Doxygen" section.
s/['"]\xe2\x80\x8b/\\(dq/g
s/\xe2\x80\x8b//g
/^\./s/\\\\/\\(rs/g
/^\.SH NAME$/{
  n
  /\\-/!s/^\(.*\)$/\1 \\- the fields of struct \1/
}
/^\.SH SYNOPSIS$/a\
.PP\
\\fB#include <socknet.h>\\fP
/^\.nf$/,/^\.fi$/!s/^ \([^ ]\)/\1/
/^\.nf$/i\
.RS 4
/^\.fi$/a\
.RE
/^\.SH "Author"$/,$d
