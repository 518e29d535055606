# SPDX-License-Identifier: MIT
# Doxygen's INPUT_FILTER for the public headers (man/Doxyfile): the headers
# keep plain C comments, and this marks them as Doxygen's, line by line:
#  - the file's top comment ("socknet/chan.h: what it is. ...") opens the
#    module's group, named socknet_chan (socknet for socknet.h), whose page
#    is socknet_chan(3); its first sentence is the page's NAME line (the
#    title: no brief, the rest is @details), and the group closes at the
#    end of the file;
#  - a comment starting a line (before a declaration or a field) becomes
#    "/**", a comment after code on its line (a field's, an enumerator's,
#    a macro's) becomes "/**<"; section rules ("/* ---- reading") stay plain;
#  - the error lists' lines, XX(NAME, [VALUE,] "message"), also document
#    the enumerators they make (SN_NAME: message), at the end of the file;
#  - a "::" after a space or "(" (an IPv6 address) is escaped: Doxygen
#    would take it for a link;
#  - each double quote (but those of #include and extern "C", which Doxygen
#    must read) gets a zero-width space (U+200B) after it: Doxygen
#    1.9's man output turns '"' into "'" (doxygen#11271, fixed in 1.13), and
#    man/roff-fixup.sed turns such a quote back into \(dq.
1b
${
  x
  s%\n *XX(\([A-Z0-9_]*\), \(-[0-9]*\), "\([^"]*\)") *\\\{0,1\}%\n/** @var SN_\1\n * \3 (\2). */%g
  s%\n *XX(\([A-Z0-9_]*\), "\([^"]*\)") *\\\{0,1\}%\n/** @var SN_\1\n * \2 (-\1). */%g
  x
  G
  s%$%\n/** @} */%
  b
}
/^ *XX([A-Z0-9_]*, /H
/^ *\/\* ----/b
/^#include\|^extern "C"/!s%"%"\xe2\x80\x8b%g
s%\([ (]\)::%\1\\::%g
# (clears the flag of "t": the substitutions above must not count below)
t clear
:clear
3{
  :title
  /\.$/!{
    N
    s%\n \* *% %
    btitle
  }
  s%\.$%%
  s%^ \* socknet/\([a-z0-9]*\)\.h: \(.*\)% * @defgroup socknet_\1 socknet/\1.h: \2\n * @details%
  s%^ \* socknet\.h: \(.*\)% * @defgroup socknet socknet.h: \1\n * @details%
}
2,/^ \*\/$/{
  /^ \*\/$/s%$%\n/** @{ */%
}
# the "Ownership:" line that follows "Thread safety:" starts a paragraph
/^ \* Ownership: /i\
 *
s%^\( *\)/\*$%\1/**%
t
s%^\( *\)/\* %\1/** %
t
s%\([^ ]\)\( \+\)/\* %\1\2/**< %
