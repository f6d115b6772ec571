import sys, re, subprocess, os
# Reports the functions of the library and the programs longer than N lines (default 60), and
# exits 1 when there is one. Usage: check_function_length.py [N] [repository root].
# A function: a body opens on a line that ends with '{'
# at indentation <= 2 (free functions, members in classes) and is not a namespace/class/struct/enum.
N=int(sys.argv[1]) if len(sys.argv)>1 else 60
root=sys.argv[2] if len(sys.argv)>2 else '.'
dirs=['autograd','ops','models','examples','optim','data','io']
bad=0
for d in dirs:
    for dp,_,fs in os.walk(os.path.join(root,d)):
        for f in fs:
            if not f.endswith(('.h','.cpp')): continue
            p=os.path.join(dp,f); L=open(p).read().split('\n')
            i=0
            while i<len(L):
                line=L[i]; m=re.match(r'^( *)(\S.*)\{$', line)
                if m and len(m.group(1))<=2 and not re.match(r'(namespace|class|struct|enum|union|extern|template\s*<[^>]*>\s*(class|struct))\b', m.group(2)) and '=' not in m.group(2).split('(')[0] and '(' in line+''.join(L[max(0,i-3):i]):
                    ind=m.group(1); j=i+1
                    while j<len(L) and not (L[j].startswith(ind+'}') and (len(L[j])==len(ind)+1 or L[j][len(ind)+1] in ' ;)/')): j+=1
                    n=j-i+1
                    # include the signature lines above (continuations)
                    k=i
                    while k>0 and L[k-1].strip() and not L[k-1].rstrip().endswith((';','}','{')) and not L[k-1].lstrip().startswith(('//','#')): k-=1
                    n+= i-k
                    if n>N: print(f'{p}:{k+1}: {n} lines: {L[k].strip()[:80]}'); bad+=1
                    i=j
                i+=1
print(f'{bad} functions over {N} lines')
sys.exit(1 if bad else 0)
