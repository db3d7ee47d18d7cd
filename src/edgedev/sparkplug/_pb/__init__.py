"""Sparkplug B's payload schema and the Python modules protoc makes of it.

``sparkplug_b.proto`` is Eclipse Tahu's (``sparkplug_b/sparkplug_b.proto`` of
github.com/eclipse/tahu, last changed in commit 46f25e7, 2022-05-16), committed unmodified:
Copyright (c) 2015, 2018 Cirrus Link Solutions and others, under the Eclipse Public License
2.0 (SPDX-License-Identifier: EPL-2.0, https://www.eclipse.org/legal/epl-2.0), as its header
says. ``sparkplug_b_pb2.py`` and ``.pyi`` are generated from it by grpcio-tools
(``python -m edgedev.sparkplug._generate``) and committed; a test checks that they match.

The file is compiled under its own name, ``sparkplug_b.proto``, as Tahu's and other Sparkplug
libraries compile it, so that a process that loads theirs too finds the same file in
protobuf's descriptor pool instead of a second definition of ``org.eclipse.tahu.protobuf``.
"""
