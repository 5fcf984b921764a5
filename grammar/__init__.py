"""Lark grammars, shipped as package data; loaded by flowlord.compiler.grammar."""
