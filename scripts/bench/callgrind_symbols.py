#!/usr/bin/env python3
"""Symbols of BINARY that executed, from callgrind outputs made with --dump-instr=yes:
every instruction address callgrind attributes to BINARY is mapped to the nm symbol
holding it (catching internal names such as ifunc resolvers), followed by the function
names callgrind itself reports; first-seen order, no repeats.

Usage: callgrind_symbols.py BINARY CALLGRIND.OUT...   (used by startup-order.sh)"""
import sys,re,subprocess,bisect
binary=sys.argv[1]; files=sys.argv[2:]
syms=[]
for l in subprocess.run(['nm','-n','-S','--defined-only',binary],capture_output=True,text=True).stdout.splitlines():
    q=l.split()
    if len(q)==4 and q[2] in 'tTwW': syms.append((int(q[0],16),int(q[1],16),q[3]))
starts=[s[0] for s in syms]
obnames={}; order=[]; seen=set()
for f in files:
    cur_ob=None; addr=0; in_call=False
    for line in open(f):
        m0=re.match(r'^cob=\((\d+)\) (.*)$',line.rstrip('\n'))
        if m0: obnames[m0.group(1)]=m0.group(2)
        m=re.match(r'^ob=\((\d+)\)(?: (.*))?$',line.rstrip('\n'))
        if m:
            if m.group(2): obnames[m.group(1)]=m.group(2)
            cur_ob=obnames.get(m.group(1)); continue
        if line.startswith('calls='):
            in_call=True; continue
        t=line.split(' ',1)[0]
        if not t or not (t[0] in '+-*' or t.startswith('0x')): continue
        if t.startswith('0x'): a=int(t,16)
        elif t[0]=='+': a=addr+int(t[1:])
        elif t[0]=='-': a=addr-int(t[1:])
        else: a=addr
        addr=a
        if in_call: in_call=False; continue  # the call's source line; cost of callee
        if cur_ob is None or not cur_ob.endswith(binary.split('/')[-1]): continue
        i=bisect.bisect_right(starts,a)-1
        if i>=0 and a<syms[i][0]+max(syms[i][1],1):
            n=syms[i][2]
            if n not in seen: seen.add(n); order.append(n)
# Then the names callgrind gives functions ("fn=(id) name", "cfn=(id) name"; recursion
# levels as name'N), for any symbol the address walk missed.
for f in files:
    for line in open(f):
        m = re.match(r"^c?fn=\(\d+\) (\S+)$", line.rstrip("\n"))
        if m:
            n = re.sub(r"'\d+$", "", m.group(1))
            if not n.startswith("0x") and n not in seen:
                seen.add(n)
                order.append(n)
print("\n".join(order))
